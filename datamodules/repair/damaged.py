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

Your own masks: `mask_folder` names a folder of mask images (`datamodules.repair.mask_folder.MaskFolder`:
random file, flips, 90-degree turns, random scale and crop to the image size; bad files left out at
start-up and named in one warning), used where `masks` says "folder", alone or mixed with generated
kinds by weight (`masks: {folder: 0.7, lama_thick: 0.3}`). With a mask folder, validation uses a fixed
subset of its masks (`val_masks` of them), each image's fixed by (`eval_seed`, index).

The facts networks are built from (`image_size`, `channels`, `num_classes`) and those of the sample
metrics (`fingerprint`, `metric_features`, `train_set` of clean `(image, label)` pairs) are the
wrapped module's.
"""

import os
from collections.abc import Callable
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.repair.degrade import Degradation
from datamodules.image.base import ImageDataModule
from datamodules.repair.mask_folder import MaskFolder, MaskMix
from datamodules.repair.masks import KINDS, MaskGenerator, fixed_mask, seed_for
from datamodules.resumable import rank_loader
from sagan.errors import ImageSize, check_ranges

DAMAGE_TAG = 0x44414D47  # "DAMG": keeps these draws apart from other uses of the same seeds


class RepairDataset(Dataset):
    """`(damaged, mask, clean, label)` items made from a data set of `(image, label)`.

    Args:
        images: the clean data set (images [C, H, W] in [-1, 1]).
        task: "inpaint" or "restore".
        masks: the training mask source (inpainting): `(height, width, generator) -> [1, H, W]`.
        degradation: the damage recipe (restoration).
        seed: seed of the draws.
        fixed: evaluation items: masks and damage depend on (seed, index) only; else on (seed, data
            epoch, index), the data epoch coming with the index from the resumable sampler.
        fixed_masks: the evaluation masks `(index, height, width, seed) -> [1, H, W]` (default: the
            generated small / large ones of `fixed_mask`).
    """

    def __init__(
        self, images: Dataset, task: str, masks: Callable, degradation: Degradation, seed: int, fixed: bool,
        fixed_masks: Callable = fixed_mask,
    ):
        self.images, self.task, self.masks, self.degradation = images, task, masks, degradation
        self.seed, self.fixed, self.fixed_masks = seed, fixed, fixed_masks
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
        mask = self.fixed_masks(index, h, w, self.seed) if self.fixed else self.masks(h, w, generator)
        return image * (1 - mask), mask


class RepairDataModule(L.LightningDataModule):
    """Inpainting or blind-restoration batches from any image data module (see the module docstring).

    Args:
        data: the image data module to wrap (its batch size, workers and splits are used).
        task: "inpaint" (holes from `masks`) or "restore" (damage from `damage`).
        masks: training mask source: a `datamodules.repair.masks.MaskGenerator` kind (strokes, lama_thin,
            lama_medium, lama_thick, boxes, scratches or mixed), "folder" (the masks of `mask_folder`), or
            weights of several, e.g. {folder: 0.7, lama_thick: 0.3} (each draw from one, chosen by weight).
        hole_range: (low, high): training masks with a hole ratio in (low, high] only; None: the
            recipe's own range.
        mask_folder: a folder of mask images (gray >= 128 is a hole) for `masks` "folder"; validation then
            uses a fixed subset of them.
        mask_scale: (low, high), 1 <= low <= high: random scale of a folder mask relative to the size at
            which it just covers the image, before the random crop.
        invert_masks: folder masks are white where the image is valid (holes are gray < 128).
        val_masks: folder masks in the fixed validation subset.
        damage: training and validation damage recipe of restoration, a `datamodules.repair.degrade.Degradation`
            preset: old_photo, blur, noise, speckle, salt_pepper, lowres, jpeg or scratches.
        eval_seed: seed of the fixed validation masks and damage; keep it fixed to compare runs.
    """

    def __init__(
        self,
        data: ImageDataModule,
        task: Literal["inpaint", "restore"] = "inpaint",
        masks: str | dict[str, float] = "mixed",
        hole_range: tuple[float, float] | None = None,
        damage: str = "old_photo",
        eval_seed: int = 0,
        mask_folder: str | None = None,
        mask_scale: tuple[float, float] = (1.0, 1.5),
        invert_masks: bool = False,
        val_masks: int = 100,
    ):
        super().__init__()
        if task not in ("inpaint", "restore"):
            raise ValueError(f"task must be 'inpaint' or 'restore', got {task!r}")
        if eval_seed < 0:
            raise ValueError(f"eval_seed must be >= 0, got {eval_seed}")
        check_ranges("RepairDataModule", mask_scale=(mask_scale, "[1, inf)"), val_masks=(val_masks, "[1, inf)"))
        self.data = data
        self.task = task
        self.masks, self.folder = self._mask_source(masks, hole_range, mask_folder, mask_scale, invert_masks, val_masks)
        self.degradation = Degradation(damage)
        self.eval_seed = eval_seed
        self.train_repair: RepairDataset | None = None
        self.val_repair: RepairDataset | None = None

    @staticmethod
    def _mask_source(masks, hole_range, mask_folder, mask_scale, invert, val_masks):
        """(the training mask source, the MaskFolder or None) of the `masks` argument."""
        weights = {masks: 1.0} if isinstance(masks, str) else dict(masks)
        unknown = sorted(set(weights) - set(KINDS) - {"folder"})
        if unknown or not weights:
            raise ValueError(f"masks must be a kind ({', '.join(KINDS)}), folder, or weights of them, got {masks!r}")
        check_ranges("RepairDataModule", **{f"masks[{name}]": (w, "[0, inf)") for name, w in weights.items()})
        if not sum(weights.values()) > 0:
            raise ValueError(f"RepairDataModule: the masks' weights must not all be 0, got {masks!r}")
        if ("folder" in weights) != (mask_folder is not None):
            raise ValueError("masks 'folder' needs mask_folder, and mask_folder needs masks 'folder' "
                             f"(alone or weighted), got masks={masks!r}, mask_folder={mask_folder!r}")
        folder = None if mask_folder is None else MaskFolder(mask_folder, mask_scale, hole_range, invert, val_masks)
        sources = {name: folder if name == "folder" else MaskGenerator(name, hole_range) for name in weights}
        if len(sources) == 1:
            return next(iter(sources.values())), folder
        return MaskMix(sources, weights), folder

    # ---------------------------------------------------------------- the wrapped module's facts
    @property
    def image_size(self) -> ImageSize:
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
        fixed_masks = fixed_mask if self.folder is None else self.folder.fixed
        return RepairDataset(images, self.task, self.masks, self.degradation, seed, fixed, fixed_masks)

    def train_dataloader(self) -> DataLoader:
        self.train_repair.seed = int(os.environ.get("PL_GLOBAL_SEED", self.train_repair.seed))
        return rank_loader(self.trainer, self.train_repair, self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return rank_loader(self.trainer, self.val_repair, self.batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        """The validation split with its fixed masks (the wrapped modules hold out one split)."""
        return self.val_dataloader()
