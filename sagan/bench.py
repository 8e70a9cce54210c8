"""`sagan bench`: training speed of real training steps, printed as JSON lines.

For each benchmark a module and its data (the default experiment's, SAGAN at 64x64, or the TransGAN
digits experiment's) run through Lightning's `Trainer.fit` with no logger, checkpoints or progress bar.
After `--warmup` generator iterations the clock runs for `--iters` more. Printed per benchmark:

- `ms_per_iter`: wall time of one generator iteration (n_critic D steps + 1 G step);
- `img_per_s`: real training images consumed per second (batch_size * n_critic per iteration);
- `peak_mem_mb`: peak CUDA memory allocated (GPU) or the process's peak resident memory (CPU).

    sagan bench [--only NAME] [--iters 5] [--warmup 2] [--precision 32|bf16-mixed] [--compile]
"""

import argparse
import json
import resource
import time
from pathlib import Path

import lightning as L
import torch

from datamodules.digits import DigitsDataModule
from sagan.cli import SaganCLI
from sagan.errors import UsageError
from sagan.models.sagan import SAGANDiscriminator, SAGANGenerator
from sagan.module import GAN

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def _default_experiment() -> tuple[L.LightningModule, L.LightningDataModule]:
    """The module and data of `experiments/sagan_digits.yaml`, as `make train` builds them."""
    cli = SaganCLI(args=["--config", str(EXPERIMENTS / "sagan_digits.yaml")], run=False)
    return cli.model, cli.datamodule


def _sagan_64() -> tuple[L.LightningModule, L.LightningDataModule]:
    """SAGAN at 64x64 (RGB), batch 64: BigGAN widths (ch=64), attention at 32x32 in G and D, conditional."""
    data = DigitsDataModule(batch_size=64, image_size=64, channels=3)
    generator = SAGANGenerator(64, 3, data.num_classes, z_dim=128, width=64, attn_resolutions=(32,))
    discriminator = SAGANDiscriminator(64, 3, data.num_classes, width=64, attn_resolutions=(32,))
    return GAN(generator, discriminator), data


def _transgan_digits() -> tuple[L.LightningModule, L.LightningDataModule]:
    """The module and data of `experiments/transgan_digits.yaml`, as `make train MODEL=transgan` builds them."""
    cli = SaganCLI(args=["--config", str(EXPERIMENTS / "transgan_digits.yaml")], run=False)
    return cli.model, cli.datamodule


BENCHMARKS = {"sagan_digits": _default_experiment, "sagan_64": _sagan_64, "transgan_digits": _transgan_digits}


class _Clock(L.Callback):
    """Times generator iterations after a warm-up; synchronizes the device only at the two ends."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start: float | None = None
        self.start_iter = 0
        self.end: float | None = None
        self.end_iter = 0

    def _now(self, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if self.start is None and pl_module.generator_steps == self.warmup:
            self.start, self.start_iter = self._now(pl_module.device), pl_module.generator_steps
            if pl_module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_end(self, trainer, pl_module) -> None:
        self.end, self.end_iter = self._now(pl_module.device), pl_module.generator_steps


def run_benchmark(name: str, iters: int, warmup: int, precision: str, compile: bool, accelerator: str) -> dict:
    """Trains `warmup + iters` generator iterations of one benchmark and returns its measurements."""
    model, data = BENCHMARKS[name]()
    model.hparams.compile = compile
    clock = _Clock(warmup)
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=(warmup + iters) * (model.n_critic + 1),
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, callbacks=[clock],
    )
    trainer.fit(model, datamodule=data)
    done = clock.end_iter - clock.start_iter
    seconds = clock.end - clock.start
    device = model.device
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        device_name = torch.cuda.get_device_name(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    return {
        "bench": name,
        "device": device_name,
        "precision": precision,
        "compile": compile,
        "batch_size": data.batch_size,
        "image_size": data.image_size,
        "n_critic": model.n_critic,
        "iters": done,
        "ms_per_iter": round(1000 * seconds / done, 2),
        "img_per_s": round(data.batch_size * model.n_critic * done / seconds, 1),
        "peak_mem_mb": round(peak, 1),
        "peak_mem_kind": "cuda_allocated" if device.type == "cuda" else "cpu_max_rss",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan bench", description="Training speed, as JSON lines.")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--iters", type=int, default=5, help="timed generator iterations (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed generator iterations first (default 2)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
    parser.add_argument("--accelerator", default="auto")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 1:
        raise UsageError("--iters and --warmup must be >= 1")
    for name in args.only or list(BENCHMARKS):
        result = run_benchmark(name, args.iters, args.warmup, args.precision, args.compile, args.accelerator)
        print(json.dumps(result), flush=True)
