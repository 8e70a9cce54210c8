"""Any folder of images: flat, or one subfolder per class; searched recursively.

    <root>/a.jpg, <root>/more/b.png, ...                  flat: unconditional
    <root>/<class>/x.jpg, <root>/<class>/sub/y.webp, ...  class subfolders: labels with use_labels=true

Files ending in .jpg, .jpeg, .png, .webp or .bmp (any case) are read; hidden folders are skipped.
Each image is center-cropped to a square (`crop`: a fixed side, or the largest square) and resized to
`image_size`. A fixed fraction of the files (`val_fraction`, chosen by `split_seed`) is held out.
"""

import os
from pathlib import Path
from typing import Literal

import torch

from datamodules.decode import IMAGE_EXTENSIONS, CropResize, is_image_name
from datamodules.imagefiles import ImageFilesDataModule
from sagan.errors import UsageError


def list_images(root: Path) -> list[Path]:
    """Image files under `root`, recursively, in sorted order, skipping hidden folders."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(Path(folder) / name for name in files if is_image_name(Path(name)))
    return sorted(found)


class ImageFolderDataModule(ImageFilesDataModule):
    """A folder of images, flat or with class subfolders.

    Args:
        root: the image folder.
        batch_size: images per batch and per device.
        image_size: height and width after cropping and resizing.
        channels: 3 (RGB) or 1 (gray); files in any mode are converted.
        use_labels: class-conditional, one class per first-level subfolder (sorted by name); every
            image must then lie in a class subfolder.
        crop: side of the centered square cut from each image before resizing; None: the largest
            centered square.
        resample: resampling filter of the resize.
        val_fraction: fraction of the images held out for validation (at least one).
        split_seed: seed of the held-out choice; keep it fixed to compare runs.
        num_workers: DataLoader worker processes.
        cache: decode, crop and resize every image once into a uint8 cache file and train from it.
        cache_dir: where cache files go; None: `<root>/sagan_cache`.
        check_files: without the cache, decode every file once at start-up to find broken ones.
    """

    name = "folder"

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 64,
        image_size: int = 64,
        channels: int = 3,
        use_labels: bool = False,
        crop: int | None = None,
        resample: Literal["bilinear", "bicubic", "lanczos"] = "bicubic",
        val_fraction: float = 0.01,
        split_seed: int = 0,
        num_workers: int = 4,
        cache: bool = False,
        cache_dir: str | None = None,
        check_files: bool = True,
    ):
        super().__init__(root, batch_size, image_size, channels, use_labels, num_workers, cache, cache_dir, check_files)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.transform = CropResize(image_size, crop, resample)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        if not self.root.is_dir():
            raise UsageError(f"image folder not found: {self.root} (give it with DATA_DIR=... or --data.init_args.root)")
        self.files = list_images(self.root)
        if len(self.files) < 2:
            raise UsageError(
                f"{len(self.files)} images under {self.root}: need at least 2 files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        top = [path for path in self.files if path.parent == self.root]
        self.classes = [] if top else sorted({path.relative_to(self.root).parts[0] for path in self.files})
        if use_labels and not self.classes:
            where = f"{len(top)} images lie directly in {self.root}, e.g. {top[0].name}"
            raise UsageError(f"use_labels=true needs one subfolder per class with every image inside: {where}")
        self.dataset_classes = len(self.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.labels = [index[path.relative_to(self.root).parts[0]] for path in self.files] if self.classes else None
        order = torch.randperm(len(self.files), generator=torch.Generator().manual_seed(split_seed)).tolist()
        held = max(1, round(val_fraction * len(self.files)))
        self._split_indices = {"train": sorted(order[held:]), "valid": sorted(order[:held])}

    @property
    def class_names(self) -> list[str]:
        """The class subfolders' names (labels are their indices in sorted order)."""
        return list(self.classes) if self.num_classes else []

    def split_files(self, split: str) -> tuple[list[Path], list[int] | None]:
        indices = self._split_indices[split]
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        return [self.files[i] for i in indices], labels

    def split_fingerprint(self, split: str) -> str:
        held = f"{split}(val_fraction={self.val_fraction:g},seed={self.split_seed})"
        size = self.image_size
        return f"folder({self.root.resolve()}):{held}:{self.transform.describe()}:{size}x{size}:{self.channels}ch"
