"""Callbacks that show what the generator does: samples from fixed noise, as an image grid or a text table."""

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
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


def attention_picture(
    images: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where one hole pixel of each image looks: the image with that pixel marked green, and the image
    dimmed under the attention weights of the token holding it, in red (from black for the row's smallest
    nonzero weight to full red for its largest; tokens it does not read stay dark).

    images: [N, C, H, W] in [-1, 1]; mask: [N, 1, H, W] (1 = hole); weights: [N, L, L] over a token grid
    that tiles the image in squares -> two [N, 3, H, W] pictures in [-1, 1]. The query is the hole pixel
    nearest the hole's centroid (the image's centre when there is no hole).
    """
    n, c, h, w = images.shape
    stride = round((h * w / weights.shape[-1]) ** 0.5)
    base = (images[:, :3] if c >= 3 else images[:, :1].expand(-1, 3, -1, -1)).add(1).div(2).clamp(0, 1)
    marked, heat = base.clone(), base * 0.35
    for i in range(n):
        ys, xs = mask[i, 0].nonzero(as_tuple=True)
        if len(ys):
            distance = (ys.float() - ys.float().mean()) ** 2 + (xs.float() - xs.float().mean()) ** 2
            y, x = ys[distance.argmin()].item(), xs[distance.argmin()].item()
        else:
            y, x = h // 2, w // 2
        row = weights[i, (y // stride) * (w // stride) + x // stride].view(1, 1, h // stride, w // stride)
        read = row[row > 0]
        low = read.min() if len(read) > 1 and read.max() > read.min() else row.new_zeros(())
        row = torch.where(row > 0, (row - low) / (row.max() - low).clamp_min(1e-12), 0.0)
        row = F.interpolate(row, scale_factor=stride, mode="nearest")[0, 0]
        heat[i, 0] = (heat[i, 0] + row).clamp(0, 1)
        for picture in (marked, heat):
            picture[i, :, max(y - 1, 0) : y + 2, x] = torch.tensor([0.0, 1.0, 0.0], device=images.device)[:, None]
            picture[i, :, y, max(x - 1, 0) : x + 2] = torch.tensor([0.0, 1.0, 0.0], device=images.device)[:, None]
    return marked * 2 - 1, heat * 2 - 1


class SampleGrid(L.Callback):
    """Draws the module's samples for its fixed noise (`pl_module.fixed_samples()`).

    Every `every_n_g_steps` generator iterations (and at the start and end of training): a module
    with a method `write_samples(directory, step, loggers)` writes its own samples into `directory`;
    otherwise images
    (a tensor `[N, C, H, W]`, the image GAN's EMA samples) are written as a grid to
    `<run dir>/samples/grid_<iteration>.png` and sent to the logger as `samples/grid` when the logger
    takes images (W&B); sentences (a list of strings, the text GAN's) are written one per line to
    `<run dir>/samples/text_<iteration>.txt` and sent as a table `samples/text`; several named pictures (a
    dict name -> images, the repair GAN's `grid` and `attention`) each as `<name>_<iteration>.png` and
    `samples/<name>`. Rank 0 only. A grid with one class per column names each column's class above it
    (`pl_module.class_names`); captions say the generator iteration.

    Args:
        every_n_g_steps: generator iterations between grids.
        nrow: images per grid row; default: the module's `grid_nrow` if it has one, else the number of
            classes for conditional models (one class per column), else the square root of the grid size.
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
        refresh = getattr(pl_module, "refresh_average_statistics", None)
        if refresh is not None:  # the average's own batch-norm statistics, as checkpoints hold them
            refresh()
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
        elif isinstance(samples, dict):
            for name, images in samples.items():
                self._write_grid(trainer, pl_module, images, directory, step, name)
        else:
            (directory / f"text_{step:06d}.txt").write_text("".join(f"{line}\n" for line in samples), encoding="utf-8")
            log_text_table(trainer.loggers, "samples/text", ["iteration", "sample"], [[step, line] for line in samples])

    def _write_grid(
        self, trainer, pl_module, images: torch.Tensor, directory: Path, step: int, name: str = "grid"
    ) -> None:
        num_classes = getattr(pl_module, "num_classes", 0)
        nrow = self.nrow or getattr(pl_module, "grid_nrow", 0) or num_classes or max(int(len(images) ** 0.5), 1)
        grid = to_grid(images, nrow)
        if num_classes and nrow == num_classes:  # the fixed labels cycle through the classes: one per column
            names = getattr(pl_module, "class_names", None) or [str(i) for i in range(num_classes)]
            grid = labelled_columns(grid, names[: len(images)], images.shape[-1])
            grid.save(directory / f"{name}_{step:06d}.png")
        else:
            save_image(grid, directory / f"{name}_{step:06d}.png")
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=f"samples/{name}", images=[grid], caption=[f"generator iteration {step}"])

    def _write_attention(self, trainer, pl_module, directory: Path, step: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, panel in pl_module.attention_panels().items():
            panel.save(directory / f"{name}.png")
            for logger in trainer.loggers:
                if hasattr(logger, "log_image"):
                    logger.log_image(key=f"attention/{name}", images=[panel], caption=[f"generator iteration {step}"])
