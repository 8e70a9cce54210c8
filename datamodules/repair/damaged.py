"""Image repair data: any image data module, with holes (inpainting) or damage (restoration) added on the fly.

`RepairDataModule` wraps an `ImageDataModule` (digits, CelebA, CIFAR-10, a folder, your own) and yields
batches `(damaged, mask, clean, label)`:

- `damaged` [N, C, H, W] in [-1, 1]: for `task="inpaint"`, `clean * (1 - mask)` (holes hold 0, the
  middle of the range); for `task="restore"`, the image after `datamodules.repair.degrade.Degradation`.
- `mask` [N, 1, H, W] of 0.0 / 1.0, **1 = hole**: the inpainting mask, or for restoration the map of
  pixels that scratches and salt-and-pepper noise overwrote (for metrics and display; a blind model
  must not read it).
- `clean` [N, C, H, W] in [-1, 1], `label` [N] as the wrapped module gives them.

Training masks and damage are random, drawn from a generator seeded by (run seed, data epoch, image
index): the resumable loader hands each item its data epoch (`keyed_by_epoch`, datamodules/resumable.py),
so a resumed run draws exactly what the uninterrupted run would have, on any number of ranks.
Validation masks and damage are fixed by (`eval_seed`, image index) alone (`datamodules.repair.masks.fixed_mask`:
even indices get a small mask, odd ones a large one), so numbers compare across runs and machines.

The facts networks are built from (`image_size`, `channels`, `num_classes`) and those of the sample
metrics (`fingerprint`, `metric_features`, `train_set` of clean `(image, label)` pairs) are the
wrapped module's.
"""

import os
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.repair.degrade import Degradation
from datamodules.image.base import ImageDataModule
from datamodules.repair.masks import MaskGenerator, fixed_mask, seed_for
from datamodules.resumable import rank_loader

DAMAGE_TAG = 0x44414D47  # "DAMG": keeps these draws apart from other uses of the same seeds


class RepairDataset(Dataset):
    """`(damaged, mask, clean, label)` items made from a data set of `(image, label)`.

    Args:
        images: the clean data set (images [C, H, W] in [-1, 1]).
        task: "inpaint" or "restore".
        masks: the training mask recipe (inpainting).
        degradation: the damage recipe (restoration).
        seed: seed of the draws.
        fixed: evaluation items: masks and damage depend on (seed, index) only; else on (seed, data
            epoch, index), the data epoch coming with the index from the resumable sampler.
    """

    def __init__(
        self, images: Dataset, task: str, masks: MaskGenerator, degradation: Degradation, seed: int, fixed: bool
    ):
        self.images, self.task, self.masks, self.degradation = images, task, masks, degradation
        self.seed, self.fixed = seed, fixed
        self.keyed_by_epoch = not fixed  # ResumableSampler hands (data epoch, index) pairs

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, label = self.images[index]
        return (*self.damage(image, index, epoch), image, label)

    def damage(self, image: torch.Tensor, index: int, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(damaged, mask) of one clean image [C, H, W]."""
        keys = (self.seed, index) if self.fixed else (self.seed, epoch, index)
        generator = torch.Generator().manual_seed(seed_for(*keys, DAMAGE_TAG))
        if self.task == "restore":
            return self.degradation(image, generator)
        h, w = image.shape[-2:]
        mask = fixed_mask(index, h, w, self.seed) if self.fixed else self.masks(h, w, generator)
        return image * (1 - mask), mask


class RepairDataModule(L.LightningDataModule):
    """Inpainting or blind-restoration batches from any image data module (see the module docstring).

    Args:
        data: the image data module to wrap (its batch size, workers and splits are used).
        task: "inpaint" (holes from `masks`) or "restore" (damage from `damage`).
        masks: training mask recipe, a `datamodules.repair.masks.MaskGenerator` kind: strokes, lama_thin,
            lama_medium, lama_thick, boxes, scratches or mixed.
        hole_range: (low, high): training masks with a hole ratio in (low, high] only; None: the
            recipe's own range.
        damage: training and validation damage recipe of restoration, a `datamodules.repair.degrade.Degradation`
            preset: old_photo, blur, noise, speckle, salt_pepper, lowres, jpeg or scratches.
        eval_seed: seed of the fixed validation masks and damage; keep it fixed to compare runs.
    """

    def __init__(
        self,
        data: ImageDataModule,
        task: Literal["inpaint", "restore"] = "inpaint",
        masks: str = "mixed",
        hole_range: tuple[float, float] | None = None,
        damage: str = "old_photo",
        eval_seed: int = 0,
    ):
        super().__init__()
        if task not in ("inpaint", "restore"):
            raise ValueError(f"task must be 'inpaint' or 'restore', got {task!r}")
        if eval_seed < 0:
            raise ValueError(f"eval_seed must be >= 0, got {eval_seed}")
        self.data = data
        self.task = task
        self.masks = MaskGenerator(masks, hole_range)
        self.degradation = Degradation(damage)
        self.eval_seed = eval_seed
        self.train_repair: RepairDataset | None = None
        self.val_repair: RepairDataset | None = None

    # ---------------------------------------------------------------- the wrapped module's facts
    @property
    def image_size(self) -> int:
        return self.data.image_size

    @property
    def channels(self) -> int:
        return self.data.channels

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def fingerprint(self) -> str:
        """The wrapped module's: real-image statistics are those of its clean training images."""
        return self.data.fingerprint

    @property
    def metric_features(self) -> str | None:
        return self.data.metric_features

    @property
    def batch_size(self) -> int:
        return self.data.batch_size

    @property
    def num_workers(self) -> int:
        return self.data.num_workers

    @property
    def train_set(self) -> Dataset | None:
        """The clean training `(image, label)` pairs (real statistics of the sample metrics)."""
        return self.data.train_set

    @property
    def val_set(self) -> Dataset | None:
        """The clean validation `(image, label)` pairs."""
        return self.data.val_set

    # ----------------------------------------------------------------------------- data
    def prepare_data(self) -> None:
        self.data.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.data.setup(stage)
        if self.train_repair is None:
            run_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # the run's seed, as rank_loader reads it
            self.train_repair = self.repair_set(self.data.train_set, fixed=False, seed=run_seed)
            self.val_repair = self.repair_set(self.data.val_set, fixed=True, seed=self.eval_seed)

    def repair_set(self, images: Dataset, fixed: bool = True, seed: int | None = None) -> RepairDataset:
        """`(damaged, mask, clean, label)` items of any `(image, label)` data set with this module's
        task and recipes; `fixed`: evaluation masks and damage, seeded by `seed` (default `eval_seed`)."""
        seed = self.eval_seed if seed is None else seed
        return RepairDataset(images, self.task, self.masks, self.degradation, seed, fixed)

    def train_dataloader(self) -> DataLoader:
        self.train_repair.seed = int(os.environ.get("PL_GLOBAL_SEED", self.train_repair.seed))
        return rank_loader(self.trainer, self.train_repair, self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return rank_loader(self.trainer, self.val_repair, self.batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        """The validation split with its fixed masks (the wrapped modules hold out one split)."""
        return self.val_dataloader()
