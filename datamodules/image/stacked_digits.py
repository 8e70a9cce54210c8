"""Stacked digits: three handwritten digits as the R, G and B channels of one image (1,000 modes).

The embedded counterpart of Stacked MNIST (Metz et al., 2017; Srivastava et al., 2017), the standard
mode-collapse benchmark: a generator that covers the data produces all 1,000 digit triples equally
often. Each image stacks three digits drawn independently and uniformly from the scikit-learn digits
(training images for the training set, held-out images for validation); its label is
`100 * d_R + 10 * d_G + d_B`. The triples are a fixed seeded draw, so every run sees the same data.
"""

import torch
from torch.utils.data import Dataset

from datamodules.image.digits import digits_tensors, held_out_split
from datamodules.image.base import ImageDataModule
from sagan.errors import check_ranges


class StackedDigits(Dataset):
    """Images `[3, H, W]` built on access from gray digits `[M, 1, H, W]` and index triples `[N, 3]`.

    Args:
        images: gray digits in [-1, 1].
        labels: their digit classes.
        triples: indices into `images`, one row per stacked image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, triples: torch.Tensor):
        self.images, self.labels, self.triples = images, labels, triples
        self.place = torch.tensor([100, 10, 1])

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.triples[i]
        return self.images[idx, 0], (self.labels[idx] * self.place).sum()


class StackedDigitsDataModule(ImageDataModule):
    """Three stacked scikit-learn digits per RGB image, 1,000 classes; the mode-collapse benchmark's data.

    Args:
        batch_size: images per batch and per device.
        image_size: height and width after resizing each digit from 8x8.
        use_labels: expose the 1,000 triple labels (off by default: the benchmark is unconditional).
        num_train: stacked training images (triples of training digits).
        num_val: stacked validation images (triples of held-out digits).
        seed: seed of the triples.
        val_fraction: fraction of each digit class held out (the split of `DigitsDataModule`).
        split_seed: seed of the held-out split.
        num_workers: DataLoader worker processes.
    """

    dataset_classes = 1000
    metric_features = "sagan.evaluation.features.StackedDigitsFeatures"

    def __init__(
        self,
        batch_size: int = 64,
        image_size: int = 32,
        use_labels: bool = False,
        num_train: int = 50_000,
        num_val: int = 5_000,
        seed: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, image_size, 3, use_labels, num_workers)
        check_ranges(
            type(self).__name__, num_train=(num_train, "[1, inf)"), num_val=(num_val, "[1, inf)"),
            val_fraction=(val_fraction, "(0, 1)"),
        )
        self.num_train, self.num_val, self.seed = num_train, num_val, seed
        self.val_fraction, self.split_seed = val_fraction, split_seed

    @property
    def fingerprint(self) -> str:
        return (
            f"stacked-sklearn-digits:train(n={self.num_train},seed={self.seed},val_fraction={self.val_fraction},"
            f"split_seed={self.split_seed})|bilinear-{self.image_size}x{self.image_size}|channels=3|[-1,1]"
        )

    @property
    def class_names(self) -> list[str]:
        """The digit triples (R, G, B) as three digits, "000" ... "999"."""
        return [f"{i:03d}" for i in range(self.num_classes)]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = digits_tensors(self.image_size, 1)
        train, held = held_out_split(labels, self.val_fraction, self.split_seed)
        rng = torch.Generator().manual_seed(self.seed)
        train_triples = train[torch.randint(0, len(train), (self.num_train, 3), generator=rng)]
        val_triples = held[torch.randint(0, len(held), (self.num_val, 3), generator=rng)]
        self.train_set = StackedDigits(images, labels, train_triples)
        self.val_set = StackedDigits(images, labels, val_triples)
