"""`sagan bench`: training speed of real training steps and data-loading speed, printed as JSON lines.

For each benchmark a module and its data (the default experiment's, SAGAN at 64x64, or the TransGAN
digits experiment's) run through Lightning's `Trainer.fit` with no logger, checkpoints or progress bar.
After `--warmup` generator iterations the clock runs for `--iters` more. Printed per benchmark:

- `ms_per_iter`: wall time of one generator iteration (n_critic D steps + 1 G step), and
  `cpu_ms_per_iter`: the process's CPU time per iteration (a 1-thread run's idle wall time on a busy machine);
- `img_per_s`: real training images consumed per second (batch_size * n_critic per iteration);
- `budget_from`, `budget_g_iters`, `budget_images`, `time_to_budget_h` (and `_days`): the experiment the
  benchmark stands for, its budget (`g_iters`, and g_iters * its batch size * n_critic real images that D
  sees), and the wall time to that budget at the measured `img_per_s` on this device (`BUDGET_OF`);
- `peak_mem_mb`: peak CUDA memory allocated (GPU) or the process's peak resident memory (CPU);
- `first_iter_s`: the first generator iteration, which with `--compile` includes compiling both step
  graphs, and `compile_s`: the warm-up's time beyond what the same iterations take once warm.

`transgan_cifar10` (and `_nogp`, without the gradient penalty) are the CIFAR-10 experiment's networks
on CIFAR-sized tensors (the digits in RGB): GPU benchmarks, run by `sagan bench-gpu`, like
`sagan_64_r1r2` (SAGAN-64 with R3GAN's loss and R1 + R2) and `sagan_64_r1r2_fd` (the same penalty by
finite difference). `r3gan_digits_fd` is `r3gan_digits` with its R1 + R2 by finite difference.

The penalty benchmark (`penalty_r3gan_digits`) times the discriminator's regularizer alone, forward and
backward, on `r3gan_digits`'s networks and one batch of real and generated digits: once exact (double
backward, attention on the math kernel) and once by finite difference (first-order gradients, attention
on the default fused kernel). Printed per variant: `approximation`, `ms_per_step` (wall) and
`cpu_ms_per_step` (the process's CPU time, which a busy machine does not inflate).

`--only NAME` also takes any experiment whose task is the image GAN (`experiments/<NAME>.yaml`, e.g.
`sagan_celeba`, `sagan_imagenet`): its networks on digits of its resolution and channels, timed against its
own budget.

Each training benchmark runs in a fresh process, so its peak memory is its own (a process's peak
resident memory never goes down) and no benchmark inherits another's allocator or compile caches.

The loader benchmark (`loader_jpeg64`) writes `--loader_images` CelebA-sized JPEGs (178x218) to a
temporary folder and reads them the way `sagan_celeba.yaml` does (center crop 178, resize to 64,
batches of 64, `--loader_workers` DataLoader workers), once decoding the JPEGs and once from the prepared
cache. Printed per variant: `setup_s` (the start-up check of every file, or the cache build),
`first_epoch_img_per_s` (worker start-up included) and `img_per_s` (the last epoch: what feeds the GPU).

    sagan bench [--only NAME|EXPERIMENT] [--iters 5] [--warmup 2] [--batch_size N] [--precision 32|bf16-mixed]
                [--compile [--compile_mode reduce-overhead] [--compile_backend inductor]]
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
import yaml
from PIL import Image

from datamodules.image.digits import DigitsDataModule
from datamodules.image.folder import ImageFolderDataModule
from datamodules.image.files import cpu_threads
from sagan.cli import SaganCLI
from sagan.errors import UsageError
from sagan.layers.norm import frozen_spectral_norm
from sagan.losses import R1R2Penalty, RelativisticLoss
from sagan.models.sagan import SAGANDiscriminator, SAGANGenerator
from sagan.tasks.image import ImageGAN

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # the repository's experiments/


def _experiment(name: str, batch_size: int | None, *overrides: str) -> tuple[L.LightningModule, L.LightningDataModule]:
    """The module and data of `experiments/<name>.yaml`, as `make train` builds them; real data sets are
    replaced by the digits at the experiment's resolution and channels (the same tensors per step)."""
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    data = config.get("data", {}).get("init_args", {})
    args = ["--config", str(EXPERIMENTS / f"{name}.yaml"), *overrides]
    if config.get("data", {}).get("class_path") != "datamodules.image.digits.DigitsDataModule":
        args += [
            "--data=datamodules.image.digits.DigitsDataModule", f"--data.init_args.image_size={data.get('image_size', 32)}",
            f"--data.init_args.channels={data.get('channels', 3)}",
            f"--data.init_args.use_labels={str(data.get('use_labels', True)).lower()}",
            f"--data.init_args.batch_size={data.get('batch_size', 64)}",
        ]
    if batch_size is not None:
        args.append(f"--data.init_args.batch_size={batch_size}")
    cli = SaganCLI(args=args, run=False)
    return cli.model, cli.datamodule


def _sagan_64(batch_size: int | None) -> tuple[L.LightningModule, L.LightningDataModule]:
    """SAGAN at 64x64 (RGB), batch 64: BigGAN widths (ch=64), attention at 32x32 in G and D, conditional."""
    data = DigitsDataModule(batch_size=batch_size or 64, image_size=64, channels=3)
    generator = SAGANGenerator(64, 3, data.num_classes, z_dim=128, width=64, attn_resolutions=(32,))
    discriminator = SAGANDiscriminator(64, 3, data.num_classes, width=64, attn_resolutions=(32,))
    return ImageGAN(generator, discriminator), data


def _sagan_64_r1r2(approximation: str, batch_size: int | None) -> tuple[L.LightningModule, L.LightningDataModule]:
    """`_sagan_64` with R3GAN's objective: the relativistic pairing loss and R1 + R2 (gamma 1)."""
    model, data = _sagan_64(batch_size)
    penalty = R1R2Penalty(gamma=1.0, approximation=approximation)
    return ImageGAN(model.generator, model.discriminator, loss=RelativisticLoss(), penalty=penalty), data


# name -> builder(batch_size or None) of (module, data); `GPU_ONLY` ones are too large for a CPU run
BENCHMARKS = {
    "sagan_digits": lambda batch: _experiment("sagan_digits", batch),
    "r3gan_digits": lambda batch: _experiment("r3gan_digits", batch),  # the same networks, R3GAN's loss + R1/R2
    "sagan_64": _sagan_64,
    "transgan_digits": lambda batch: _experiment("transgan_digits", batch),
    "transgan_cifar10": lambda batch: _experiment("transgan_cifar10", batch),
    "transgan_cifar10_nogp": lambda batch: _experiment("transgan_cifar10", batch, "--model.init_args.penalty=null"),
    "r3gan_digits_fd": lambda batch: _experiment(
        "r3gan_digits", batch, "--model.init_args.penalty.init_args.approximation=finite_difference"
    ),
    "sagan_64_r1r2": lambda batch: _sagan_64_r1r2("exact", batch),
    "sagan_64_r1r2_fd": lambda batch: _sagan_64_r1r2("finite_difference", batch),
}
GPU_ONLY = ("transgan_cifar10", "transgan_cifar10_nogp", "sagan_64_r1r2", "sagan_64_r1r2_fd")
# benchmark -> the experiment whose budget (`g_iters`) it is timed against; an experiment benchmarked by name
# (`--only sagan_celeba`) is its own. sagan_64 is no experiment: sagan_celeba's 64x64 budget.
BUDGET_OF = {
    "sagan_digits": "sagan_digits", "r3gan_digits": "r3gan_digits", "r3gan_digits_fd": "r3gan_digits",
    "sagan_64": "sagan_celeba", "sagan_64_r1r2": "sagan_celeba", "sagan_64_r1r2_fd": "sagan_celeba",
    "transgan_digits": "transgan_digits", "transgan_cifar10": "transgan_cifar10",
    "transgan_cifar10_nogp": "transgan_cifar10",
}
IMAGE_TASK = "sagan.tasks.image.ImageGAN"
DEFAULT = ("sagan_digits", "sagan_64", "transgan_digits")
# penalty benchmark -> the training benchmark whose networks, data and penalty it times
PENALTY_BENCHMARKS = {"penalty_r3gan_digits": "r3gan_digits"}


def image_experiments() -> list[str]:
    """The experiments `sagan bench --only NAME` can time: those whose task is the image GAN itself."""
    names = []
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        if (config.get("model") or {}).get("class_path") == IMAGE_TASK:
            names.append(path.stem)
    return names


def builder(name: str):
    """The (module, data) builder of a benchmark, or of an image-GAN experiment timed by its own name."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    return lambda batch: _experiment(name, batch)


def experiment_budget(name: str) -> tuple[str, int | None, int | None]:
    """(experiment, its `g_iters`, its batch size) that benchmark `name` is timed against (None where unset)."""
    experiment = BUDGET_OF.get(name, name)
    config = yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text()) or {}
    batch_size = ((config.get("data") or {}).get("init_args") or {}).get("batch_size")
    return experiment, config.get("g_iters"), batch_size


def time_to_budget(g_iters: int | None, batch_size: int, n_critic: int, img_per_s: float) -> dict:
    """An experiment's budget in generator iterations and in real images D sees (g_iters x batch_size x
    n_critic), and the wall time to it at `img_per_s`: hours, and days."""
    if g_iters is None:
        return {"budget_g_iters": None, "budget_images": None, "time_to_budget_h": None, "time_to_budget_days": None}
    images = g_iters * batch_size * n_critic
    hours = images / img_per_s / 3600
    return {"budget_g_iters": g_iters, "budget_images": images, "time_to_budget_h": round(hours, 2),
            "time_to_budget_days": round(hours / 24, 2)}


class _Clock(L.Callback):
    """Times generator iterations: the first one (with any compilation), the warm-up, then `iters` more;
    synchronizes the device only at those points."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.fit_start: float | None = None
        self.first: float | None = None
        self.start: float | None = None
        self.start_iter = 0
        self.end: float | None = None
        self.end_iter = 0
        self.cpu_start = self.cpu_end = 0.0  # the process's CPU time over the timed iterations

    def _now(self, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.fit_start = self._now(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if self.first is None and pl_module.generator_steps == 1:
            self.first = self._now(pl_module.device)
        if self.start is None and pl_module.generator_steps == self.warmup:
            self.start, self.start_iter = self._now(pl_module.device), pl_module.generator_steps
            self.cpu_start = time.process_time()
            if pl_module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_end(self, trainer, pl_module) -> None:
        self.end, self.end_iter = self._now(pl_module.device), pl_module.generator_steps
        self.cpu_end = time.process_time()


def run_benchmark(
    name: str, iters: int, warmup: int, precision: str, compile: bool, accelerator: str,
    batch_size: int | None = None, compile_mode: str | None = None, compile_backend: str = "inductor",
) -> dict:
    """Trains `warmup + iters` generator iterations of one benchmark and returns its measurements."""
    model, data = builder(name)(batch_size)
    model.hparams.compile = compile
    model.hparams.compile_mode = compile_mode
    model.hparams.compile_backend = compile_backend
    clock = _Clock(warmup)
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=(warmup + iters) * (model.n_critic + 1),
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, callbacks=[clock],
    )
    trainer.fit(model, datamodule=data)
    done = clock.end_iter - clock.start_iter
    seconds = clock.end - clock.start
    steady = seconds / done
    device = model.device
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        device_name = torch.cuda.get_device_name(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    experiment, g_iters, budget_batch = experiment_budget(name)
    img_per_s = data.batch_size * model.n_critic / steady
    return {
        "bench": name,
        "device": device_name,
        "precision": precision,
        "compile": (compile_mode or "default") if compile else False,
        "batch_size": data.batch_size,
        "image_size": data.image_size,
        "n_critic": model.n_critic,
        "iters": done,
        "ms_per_iter": round(1000 * steady, 2),
        "img_per_s": round(img_per_s, 1),
        "first_iter_s": round(clock.first - clock.fit_start, 2),  # includes compiling both step graphs
        # warm-up time beyond what the same iterations take once warm: compilation, autotuning, graph capture
        "compile_s": round(max(clock.start - clock.fit_start - warmup * steady, 0.0), 2) if compile else 0.0,
        "peak_mem_mb": round(peak, 1),
        "peak_mem_kind": "cuda_allocated" if device.type == "cuda" else "cpu_max_rss",
        # the process's CPU time per iteration: on a busy machine, a 1-thread run's idle wall time
        "cpu_ms_per_iter": round(1000 * (clock.cpu_end - clock.cpu_start) / done, 2),
        "budget_from": experiment,  # whose g_iters the time to budget is for
        # at the experiment's own batch size (with --batch_size: assuming this img/s holds there)
        **time_to_budget(g_iters, budget_batch or data.batch_size, model.n_critic, img_per_s),
    }


def run_isolated(*args, **kwargs) -> dict:
    """`run_benchmark` in a fresh spawned process, so the peak memory it reports is this benchmark's own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_benchmark, *args, **kwargs).result()


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


def penalty_benchmark(
    name: str, iters: int, warmup: int, accelerator: str = "auto", batch_size: int | None = None
) -> list[dict]:
    """Milliseconds of D's penalty alone (forward and backward into D's parameters), exact and by finite
    difference, on the networks, data and penalty of `PENALTY_BENCHMARKS[name]`."""
    model, data = BENCHMARKS[PENALTY_BENCHMARKS[name]](batch_size)
    use_cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if use_cuda else "cpu")
    data.prepare_data()
    data.setup("fit")
    real, y_real = (t.to(device) for t in next(iter(data.train_dataloader())))
    model.to(device)
    y_real = y_real if model.num_classes else None
    z, y_fake = model.sample_noise(real.shape[0])
    with torch.no_grad():
        fake = model.generator(z, y_fake)
    results = []
    for approximation in ("exact", "finite_difference"):
        base = model.penalty
        penalty = type(base)(gamma=base.gamma, approximation=approximation, sigma=base.sigma)

        def step():
            model.discriminator.zero_grad(set_to_none=True)
            with frozen_spectral_norm(model.discriminator):
                penalty(model.critic, real, fake, y_real, y_fake).backward()

        for _ in range(warmup):
            step()
        if use_cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(iters):
            step()
        if use_cuda:
            torch.cuda.synchronize()
        cpu_ms = 1000 * (time.process_time() - cpu_start) / iters
        results.append({
            "bench": name,
            "device": torch.cuda.get_device_name(device) if use_cuda else f"cpu ({torch.get_num_threads()} threads)",
            "penalty": repr(penalty),
            "approximation": approximation,
            "batch_size": real.shape[0],
            "image_size": real.shape[-1],
            "iters": iters,
            "ms_per_step": round(1000 * (time.perf_counter() - start) / iters, 2),
            "cpu_ms_per_step": round(cpu_ms, 2),  # the process's CPU time: the idle wall time of a 1-thread run
        })
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sagan bench", description="Training speed, and the time to each experiment's budget on this device."
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME",
        choices=sorted({*BENCHMARKS, *image_experiments()}) + list(PENALTY_BENCHMARKS) + list(LOADER_BENCHMARKS),
        help="run only these benchmarks, or image-GAN experiments by name (e.g. sagan_celeba, sagan_imagenet): "
        f"{', '.join(sorted({*BENCHMARKS, *image_experiments()}))}, {', '.join(PENALTY_BENCHMARKS)}, "
        f"{', '.join(LOADER_BENCHMARKS)} (default: {', '.join((*DEFAULT, *PENALTY_BENCHMARKS, *LOADER_BENCHMARKS))})",
    )
    parser.add_argument("--iters", type=int, default=5, help="timed generator iterations (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed generator iterations first (default 2)")
    parser.add_argument("--batch_size", type=int, default=None, help="images per batch (default: the benchmark's)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the D step and the G step")
    parser.add_argument("--compile_mode", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                        help="torch.compile mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--compile_backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--loader_images", type=int, default=2048, help="JPEGs the loader benchmark reads (default 2048)")
    parser.add_argument("--loader_workers", type=int, default=cpu_threads(), help="DataLoader workers (default: cores)")
    parser.add_argument("--loader_epochs", type=int, default=2, help="epochs the loader benchmark times (default 2)")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 1:
        raise UsageError("--iters and --warmup must be >= 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.loader_images < 2 * 64 or args.loader_workers < 0 or args.loader_epochs < 1:
        raise UsageError("--loader_images must be >= 128, --loader_workers >= 0 and --loader_epochs >= 1")
    if args.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise UsageError(f"--compile_backend must be one of {torch._dynamo.list_backends(exclude_tags=())}")
    mode = None if args.compile_mode == "default" else args.compile_mode
    default = [*DEFAULT, *PENALTY_BENCHMARKS, *LOADER_BENCHMARKS]
    for name in args.only or default:
        if name in LOADER_BENCHMARKS:
            results = loader_benchmark(args.loader_images, args.loader_workers, args.loader_epochs)
        elif name in PENALTY_BENCHMARKS:
            results = penalty_benchmark(name, args.iters, args.warmup, args.accelerator, args.batch_size)
        else:
            results = [run_isolated(
                name, args.iters, args.warmup, args.precision, args.compile, args.accelerator, args.batch_size,
                mode, args.compile_backend,
            )]
        for result in results:
            print(json.dumps(result), flush=True)
