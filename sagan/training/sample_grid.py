"""Callbacks that show what the generator does: samples from fixed noise, as an image grid or a text table."""

from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

from sagan.errors import UsageError, check_ranges
from sagan.visualization.render import labelled_columns


def log_text_table(loggers, key: str, columns: list[str], rows: list[list]) -> None:
    """Sends a table (one row per sample) to every logger that takes tables (W&B)."""
    for logger in loggers:
        if hasattr(logger, "log_text"):
            logger.log_text(key=key, columns=columns, data=rows)


def to_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """[N, C, H, W] images in [-1, 1] -> one [C, H', W'] grid in [0, 1]."""
    return make_grid(images.float().clamp(-1, 1).add(1).div(2), nrow=nrow, padding=2, pad_value=1.0)


class SampleGrid(L.Callback):
    """Draws the module's samples for its fixed noise (`pl_module.fixed_samples()`).

    Every `every_n_g_steps` generator iterations (and at the start and end of training): a module
    with a method `write_samples(directory, step, loggers)` writes its own samples into `directory`;
    otherwise images
    (a tensor `[N, C, H, W]`, the image GAN's EMA samples) are written as a grid to
    `<run dir>/samples/grid_<iteration>.png` and sent to the logger as `samples/grid` when the logger
    takes images (W&B); sentences (a list of strings, the text GAN's) are written one per line to
    `<run dir>/samples/text_<iteration>.txt` and sent as a table `samples/text`. Rank 0 only.
    A grid with one class per column names each column's class above it (`pl_module.class_names`);
    captions say the generator iteration.

    Args:
        every_n_g_steps: generator iterations between grids.
        nrow: images per grid row; default: the number of classes for conditional models (one class
            per column), else the square root of the grid size.
        attention: also draw both networks' attention panels (`pl_module.attention_panels()`, those of
            `sagan attention`) at every interval, into `<run dir>/samples/attention_<iteration>/` and
            to the logger as `attention/<layer>` (W&B).
    """

    def __init__(self, every_n_g_steps: int = 250, nrow: int | None = None, attention: bool = False):
        check_ranges("SampleGrid", every_n_g_steps=(every_n_g_steps, "[1, inf)"), nrow=(nrow, "[1, inf)"))
        self.every_n_g_steps = every_n_g_steps
        self.nrow = nrow
        self.attention = attention
        self._last_step: int | None = None
        self._dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # every rank asks: under DDP `trainer.log_dir` is a broadcast from rank 0
        self._dir = Path(trainer.log_dir or trainer.default_root_dir) / "samples"
        if self.attention and not hasattr(pl_module, "attention_panels"):
            raise UsageError(f"--samples.attention=true: a {type(pl_module).__qualname__} draws no attention panels")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if pl_module.generator_steps % self.every_n_g_steps == 0:
            self._draw(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer, pl_module)

    @torch.no_grad()
    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = pl_module.generator_steps
        if step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        directory = self._dir or Path(trainer.default_root_dir) / "samples"
        directory.mkdir(parents=True, exist_ok=True)
        if self.attention:
            self._write_attention(trainer, pl_module, directory / f"attention_{step:06d}", step)
        writer = getattr(pl_module, "write_samples", None)
        if writer is not None:  # a task with its own kind of samples (videos, sounds, repairs) writes them itself
            writer(directory, step, trainer.loggers)
            return
        samples = pl_module.fixed_samples()
        if isinstance(samples, torch.Tensor):
            self._write_grid(trainer, pl_module, samples, directory, step)
        else:
            (directory / f"text_{step:06d}.txt").write_text("".join(f"{line}\n" for line in samples), encoding="utf-8")
            log_text_table(trainer.loggers, "samples/text", ["iteration", "sample"], [[step, line] for line in samples])

    def _write_grid(self, trainer, pl_module, images: torch.Tensor, directory: Path, step: int) -> None:
        num_classes = getattr(pl_module, "num_classes", 0)
        nrow = self.nrow or num_classes or max(int(len(images) ** 0.5), 1)
        grid = to_grid(images, nrow)
        if num_classes and nrow == num_classes:  # the fixed labels cycle through the classes: one per column
            names = getattr(pl_module, "class_names", None) or [str(i) for i in range(num_classes)]
            grid = labelled_columns(grid, names[: len(images)], images.shape[-1])
            grid.save(directory / f"grid_{step:06d}.png")
        else:
            save_image(grid, directory / f"grid_{step:06d}.png")
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="samples/grid", images=[grid], caption=[f"generator iteration {step}"])

    def _write_attention(self, trainer, pl_module, directory: Path, step: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, panel in pl_module.attention_panels().items():
            panel.save(directory / f"{name}.png")
            for logger in trainer.loggers:
                if hasattr(logger, "log_image"):
                    logger.log_image(key=f"attention/{name}", images=[panel], caption=[f"generator iteration {step}"])
