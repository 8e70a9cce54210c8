"""Shared plumbing of image data modules: loaders and the facts that networks are built from.

A subclass provides `train_set` and `val_set` in `setup` (datasets of `(image, label)` with images as
float tensors in [-1, 1], shape [channels, image_size, image_size]) and sets `dataset_classes`.
`image_size`, `channels` and `num_classes` are linked into the networks by the CLI.
"""

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.resumable import evaluation_loader, training_loader


class ImageDataModule(L.LightningDataModule):
    """Base class of image data modules.

    Args:
        batch_size: images per batch and per device.
        image_size: height and width of the images the networks see.
        channels: image channels the networks see.
        use_labels: expose class labels, making the models class-conditional.
        num_workers: DataLoader worker processes.
    """

    dataset_classes: int = 0

    def __init__(
        self, batch_size: int = 64, image_size: int = 32, channels: int = 3, use_labels: bool = True, num_workers: int = 0
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.image_size = image_size
        self.channels = channels
        self.use_labels = use_labels
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """Classes the models are conditioned on: 0 when labels are off or the data has none."""
        return self.dataset_classes if self.use_labels else 0

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        # Each rank reads its own share. Training batches come in an order fixed by the run's seed
        # (Lightning's PL_GLOBAL_SEED), and the loader's position goes into checkpoints (resumable.py).
        shard = dict(num_replicas=self.trainer.world_size, rank=self.trainer.global_rank) if self.trainer else {}
        options = dict(
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )
        if train:  # whole batches keep batch-norm statistics and step costs stable
            return training_loader(
                dataset, self.batch_size, seed=int(os.environ.get("PL_GLOBAL_SEED", 0)), **shard, **options
            )
        return evaluation_loader(dataset, self.batch_size, **shard, **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)
