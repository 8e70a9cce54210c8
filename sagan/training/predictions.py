"""`sagan predict`: the images a module's `predict_step` returns, written as PNG files."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torchvision.utils import save_image


class ImagePredictionWriter(BasePredictionWriter):
    """Writes each predicted image [C, H, W] in [-1, 1] to `<output_dir>/<index>.png`, the index being its
    item's index in the prediction data (so every rank writes its own share); other predictions are left
    alone. Only `sagan predict` calls it.

    Args:
        output_dir: folder of the PNGs; default `<checkpoint without .ckpt>_predictions/` beside
            `--ckpt_path`, else `predictions/` in the trainer's root directory.
    """

    def __init__(self, output_dir: str | None = None):
        super().__init__(write_interval="batch")
        self.output_dir = output_dir

    def directory(self, trainer: L.Trainer) -> Path:
        if self.output_dir is not None:
            return Path(self.output_dir)
        if trainer.ckpt_path:
            return Path(trainer.ckpt_path).with_name(Path(trainer.ckpt_path).stem + "_predictions")
        return Path(trainer.default_root_dir) / "predictions"

    def write_on_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prediction, batch_indices, batch, batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if not isinstance(prediction, torch.Tensor) or prediction.dim() != 4:
            return
        directory = self.directory(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        n = len(prediction)
        indices = batch_indices if batch_indices is not None else range(batch_idx * n, (batch_idx + 1) * n)
        for index, image in zip(indices, prediction):
            save_image(image.float().clamp(-1, 1).add(1).div(2), directory / f"{int(index):06d}.png")
