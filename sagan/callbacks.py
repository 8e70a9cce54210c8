"""Callbacks that show what the generator does: sample grids from a fixed noise batch."""

from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid, save_image


def to_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """[N, C, H, W] images in [-1, 1] -> one [C, H', W'] grid in [0, 1]."""
    return make_grid(images.float().clamp(-1, 1).add(1).div(2), nrow=nrow, padding=2, pad_value=1.0)


class SampleGrid(L.Callback):
    """Draws the EMA generator's samples for the module's fixed noise (`grid_z`, `grid_y`).

    Every `every_n_g_steps` generator iterations (and at the start and end of training) the grid is
    written to `<run dir>/samples/grid_<iteration>.png` and sent to the logger as `samples/grid` when
    the logger takes images (W&B). Rank 0 only.

    Args:
        every_n_g_steps: generator iterations between grids.
        nrow: images per grid row; default: the number of classes for conditional models (one class
            per column), else the square root of the grid size.
    """

    def __init__(self, every_n_g_steps: int = 250, nrow: int | None = None):
        if every_n_g_steps < 1:
            raise ValueError(f"every_n_g_steps must be >= 1, got {every_n_g_steps}")
        self.every_n_g_steps = every_n_g_steps
        self.nrow = nrow
        self._last_step: int | None = None
        self._dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # every rank asks: under DDP `trainer.log_dir` is a broadcast from rank 0
        self._dir = Path(trainer.log_dir or trainer.default_root_dir) / "samples"

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
        images = pl_module(pl_module.grid_z, pl_module.grid_y)
        nrow = self.nrow or pl_module.num_classes or max(int(len(images) ** 0.5), 1)
        grid = to_grid(images, nrow)
        path = (self._dir or Path(trainer.default_root_dir) / "samples") / f"grid_{step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="samples/grid", images=[grid], caption=[f"generator iteration {step}"])
