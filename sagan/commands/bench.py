"""`sagan bench`: training speed of real training steps and data-loading speed, printed as JSON lines.

For each benchmark a module and its data (the default experiment's, SAGAN at 64x64, or the TransGAN
digits experiment's) run through Lightning's `Trainer.fit` with no logger, checkpoints or progress bar.
After `--warmup` generator iterations the clock runs for `--iters` more. Printed per benchmark:

- `ms_per_iter`: wall time of one generator iteration (n_critic D steps + 1 G step);
- `img_per_s`: real training images consumed per second (batch_size * n_critic per iteration);
- `peak_mem_mb`: peak CUDA memory allocated (GPU) or the process's peak resident memory (CPU).

Each training benchmark runs in a fresh process, so its peak memory is its own (a process's peak
resident memory never goes down) and no benchmark inherits another's allocator or compile caches.

The loader benchmark (`loader_jpeg64`) writes `--loader_images` CelebA-sized JPEGs (178x218) to a
temporary folder and reads them the way `sagan_celeba.yaml` does (center crop 178, resize to 64,
batches of 64, `--loader_workers` DataLoader workers), once decoding the JPEGs and once from the prepared
cache. Printed per variant: `setup_s` (the start-up check of every file, or the cache build),
`first_epoch_img_per_s` (worker start-up included) and `img_per_s` (the last epoch: what feeds the GPU).

    sagan bench [--only NAME] [--iters 5] [--warmup 2] [--precision 32|bf16-mixed] [--compile]
                [--loader_images 2048] [--loader_workers N] [--loader_epochs 2]
"""

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image

from datamodules.digits import DigitsDataModule
from datamodules.folder import ImageFolderDataModule
from datamodules.imagefiles import cpu_threads
from sagan.cli import SaganCLI
from sagan.errors import UsageError
from sagan.models.sagan import SAGANDiscriminator, SAGANGenerator
from sagan.tasks.image import ImageGAN

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # the repository's experiments/


def _default_experiment() -> tuple[L.LightningModule, L.LightningDataModule]:
    """The module and data of `experiments/sagan_digits.yaml`, as `make train` builds them."""
    cli = SaganCLI(args=["--config", str(EXPERIMENTS / "sagan_digits.yaml")], run=False)
    return cli.model, cli.datamodule


def _sagan_64() -> tuple[L.LightningModule, L.LightningDataModule]:
    """SAGAN at 64x64 (RGB), batch 64: BigGAN widths (ch=64), attention at 32x32 in G and D, conditional."""
    data = DigitsDataModule(batch_size=64, image_size=64, channels=3)
    generator = SAGANGenerator(64, 3, data.num_classes, z_dim=128, width=64, attn_resolutions=(32,))
    discriminator = SAGANDiscriminator(64, 3, data.num_classes, width=64, attn_resolutions=(32,))
    return ImageGAN(generator, discriminator), data


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


def run_isolated(name: str, iters: int, warmup: int, precision: str, compile: bool, accelerator: str) -> dict:
    """`run_benchmark` in a fresh spawned process, so the peak memory it reports is this benchmark's own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_benchmark, name, iters, warmup, precision, compile, accelerator).result()


def write_jpegs(folder: Path, count: int, seed: int = 0) -> None:
    """`count` CelebA-sized (178x218) JPEGs of smooth random content plus grain, quality 90 (~20 KB)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((178, 218), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)


def loader_benchmark(images: int, workers: int, epochs: int, batch_size: int = 64, image_size: int = 64) -> list[dict]:
    """Images per second of the training DataLoader on generated JPEGs, without and with the cache."""
    results = []
    with tempfile.TemporaryDirectory(prefix="sagan-bench-") as tmp:
        folder = Path(tmp) / "images"
        write_jpegs(folder, images)
        for cache in (False, True):
            start = time.perf_counter()
            data = ImageFolderDataModule(
                str(folder), batch_size=batch_size, image_size=image_size, crop=178, val_fraction=1 / images,
                num_workers=workers, cache=cache, cache_dir=str(Path(tmp) / "cache"),
            )
            data.prepare_data()
            data.setup("fit")
            setup_s = time.perf_counter() - start
            loader = data.train_dataloader()
            rates = []
            for _ in range(epochs):
                start, seen = time.perf_counter(), 0
                for x, _ in loader:
                    seen += x.shape[0]
                rates.append(seen / (time.perf_counter() - start))
            results.append({
                "bench": "loader_jpeg64",
                "device": f"cpu ({cpu_threads()} cores)",
                "cache": cache,
                "images": len(data.train_set),
                "source": "178x218 JPEG",
                "batch_size": batch_size,
                "image_size": image_size,
                "num_workers": workers,
                "setup_s": round(setup_s, 2),
                "first_epoch_img_per_s": round(rates[0], 1),
                "img_per_s": round(rates[-1], 1),
            })
            del loader, data  # stops the persistent workers
    return results


LOADER_BENCHMARKS = ("loader_jpeg64",)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan bench", description="Training speed, as JSON lines.")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS) + list(LOADER_BENCHMARKS), help="run only these benchmarks"
    )
    parser.add_argument("--iters", type=int, default=5, help="timed generator iterations (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed generator iterations first (default 2)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--loader_images", type=int, default=2048, help="JPEGs the loader benchmark reads (default 2048)")
    parser.add_argument("--loader_workers", type=int, default=cpu_threads(), help="DataLoader workers (default: cores)")
    parser.add_argument("--loader_epochs", type=int, default=2, help="epochs the loader benchmark times (default 2)")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 1:
        raise UsageError("--iters and --warmup must be >= 1")
    if args.loader_images < 2 * 64 or args.loader_workers < 0 or args.loader_epochs < 1:
        raise UsageError("--loader_images must be >= 128, --loader_workers >= 0 and --loader_epochs >= 1")
    for name in args.only or [*BENCHMARKS, *LOADER_BENCHMARKS]:
        if name in LOADER_BENCHMARKS:
            results = loader_benchmark(args.loader_images, args.loader_workers, args.loader_epochs)
        else:
            results = [run_isolated(name, args.iters, args.warmup, args.precision, args.compile, args.accelerator)]
        for result in results:
            print(json.dumps(result), flush=True)
