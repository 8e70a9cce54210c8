"""The embedded default data set: scikit-learn's 8x8 handwritten digits, resized.

1,797 grayscale images of the digits 0-9 (UCI optdigits test set) ship inside scikit-learn, so this
module needs no download. Images are resized with bilinear interpolation and scaled to [-1, 1]. A fixed
stratified 10% of each class is held out for validation, whatever the seed of the run.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from datamodules.image.base import ImageDataModule
from sagan.errors import ImageSize, check_range, image_hw


def digits_tensors(image_size: ImageSize = 32, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as `[N, channels, H, W]` floats in [-1, 1] and `[N]` labels (H, W: `image_size`,
    one side or [height, width]; a non-square size is resized to cover it, then center-cropped)."""
    data = load_digits()
    images = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
    height, width = image_hw(image_size)
    side = max(height, width)
    images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
    top, left = (side - height) // 2, (side - width) // 2
    images = images[..., top : top + height, left : left + width]
    images = (images.clamp(0.0, 1.0) * 2.0 - 1.0).expand(-1, channels, -1, -1).contiguous()
    return images, torch.as_tensor(data.target, dtype=torch.long)


def held_out_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a stratified split: (train, held out), with `fraction` of each class held out."""
    rng = torch.Generator().manual_seed(seed)
    train, held = [], []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=rng)]
        k = round(fraction * len(idx))
        held.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


class DigitsDataModule(ImageDataModule):
    """scikit-learn's handwritten digits (10 classes), the default data set; no download.

    Args:
        batch_size: images per batch and per device.
        image_size: height and width after resizing from 8x8, or [height, width] (resized to cover it,
            then center-cropped).
        channels: 1 (grayscale) or 3 (the gray value repeated).
        use_labels: expose the digit labels, making the models class-conditional.
        val_fraction: fraction of each class held out for validation (split fixed by `split_seed`).
        split_seed: seed of the held-out split; keep it fixed to compare runs.
        num_workers: DataLoader worker processes (the data sits in memory: 0 is fastest).
    """

    dataset_classes = 10
    metric_features = "sagan.evaluation.features.DigitsFeatures"  # offline digits FID / IS / KID

    def __init__(
        self,
        batch_size: int = 64,
        image_size: ImageSize = 32,
        channels: int = 1,
        use_labels: bool = True,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, image_size, channels, use_labels, num_workers)
        check_range(type(self).__name__, "val_fraction", val_fraction, "(0, 1)")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3 for the digits, got {channels}")
        self.val_fraction = val_fraction
        self.split_seed = split_seed

    @property
    def fingerprint(self) -> str:
        return (
            f"sklearn-digits:train(val_fraction={self.val_fraction},split_seed={self.split_seed})"
            f"|bilinear-{'x'.join(map(str, image_hw(self.image_size)))}|channels={self.channels}|[-1,1]"
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = digits_tensors(self.image_size, self.channels)
        train, held = held_out_split(labels, self.val_fraction, self.split_seed)
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[held], labels[held])
