"""Data modules that read image files: broken files found before training, an optional prepared cache.

At `setup` every file of a split is checked once, before the first step: with the cache on, by the
cache build (each file is decoded once, and later runs reuse the cache and decode nothing); with it off,
by decoding each file at reduced scale (`check_files`). Missing, empty, truncated, corrupt and non-image
files are left out and named in one warning; a split left with no images is a start-up error. Should a
file still fail later (say it changed during the run), the data set logs it and serves the next image:
a DataLoader worker never dies hours into a run because of one file.
"""

import os
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import Dataset

from datamodules.cache import PreparedCache, map_in_threads, to_unit_range
from datamodules.image.decode import CropResize, check_image, load_image
from datamodules.image.base import ImageDataModule
from sagan.errors import ImageSize, UsageError, image_hw

NAMED_IN_WARNING = 10  # broken files named in the warning; the rest are counted


def cpu_threads() -> int:
    """CPU cores this process may use: the threads that decode in parallel."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ImageFiles(Dataset):
    """Image files decoded on every access, as `(float image [C, H, W] in [-1, 1], label)`.

    Args:
        paths: the image files.
        labels: one class index per file; None: every label is 0.
        transform: crop and resize.
        channels: 3 (RGB) or 1 (gray).
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | None, transform: CropResize, channels: int):
        self.paths = list(paths)
        self.labels = torch.zeros(len(self.paths), dtype=torch.long) if labels is None else torch.as_tensor(labels)
        self.transform = transform
        self.channels = channels
        self.failed: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            try:
                array = load_image(self.paths[i], self.transform, self.channels)
            except Exception as error:  # a file broken after the start-up check: serve the next one
                if self.paths[i] not in self.failed:
                    self.failed.add(self.paths[i])
                    warnings.warn(f"skipping unreadable image {self.paths[i]}: {error}", stacklevel=2)
                continue
            return to_unit_range(array), self.labels[i]
        raise RuntimeError(f"none of the {len(self.paths)} images can be read any more")


def scan(paths: Sequence[Path], threads: int) -> tuple[list[int], list[tuple[Path, str]]]:
    """Checks every file (in `threads` threads): indices of the good ones, and (path, reason) of the others."""
    reasons = list(map_in_threads(check_image, paths, threads))
    good = [i for i, reason in enumerate(reasons) if reason is None]
    return good, [(path, reason) for path, reason in zip(paths, reasons) if reason is not None]


class ImageFilesDataModule(ImageDataModule, ABC):
    """Base of data modules that read image files. A subclass sets `name`, builds `transform` and
    implements `split_files(split)` -> (paths, labels or None) for the splits in `splits`
    (training split first, then the validation split).

    Args:
        root: the data directory.
        batch_size: images per batch and per device.
        image_size: height and width of the images the networks see, or [height, width] (each image is
            then scaled to cover it and center-cropped).
        channels: 3 (RGB) or 1 (gray); files in any mode are converted.
        use_labels: expose class labels, making the models class-conditional.
        num_workers: DataLoader worker processes.
        cache: decode, crop and resize every image once into a uint8 cache file and train from it.
        cache_dir: where cache files go; None: `<root>/sagan_cache`.
        check_files: without the cache, decode every file once at start-up to find broken ones
            (with the cache, building it does this).
    """

    name = "images"
    splits: tuple[str, str] = ("train", "valid")

    def __init__(
        self,
        root: str,
        batch_size: int,
        image_size: ImageSize,
        channels: int,
        use_labels: bool,
        num_workers: int,
        cache: bool,
        cache_dir: str | None,
        check_files: bool,
    ):
        super().__init__(batch_size, image_size, channels, use_labels, num_workers)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.root = Path(root).expanduser()
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / "sagan_cache"
        self.check_files = check_files
        self.transform = CropResize(self.image_size)

    # ------------------------------------------------------------------------------- subclass API
    @abstractmethod
    def split_files(self, split: str) -> tuple[list[Path], list[int] | None]:
        """The image files of `split` and their class indices (None: the data has no classes)."""

    def split_fingerprint(self, split: str) -> str:
        """What the images of `split` are: data set, split, transform, resolution and channels."""
        height, width = image_hw(self.image_size)
        return f"{self.name}:{split}:{self.transform.describe()}:{height}x{width}:{self.channels}ch"

    @property
    def fingerprint(self) -> str:
        """The training split's fingerprint, the key of metric caches (e.g. real-image statistics)."""
        return self.split_fingerprint(self.splits[0])

    # ------------------------------------------------------------------------------ loading
    def _cached(self, split: str, paths: list[Path], labels: list[int] | None):
        """The split from its cache, built first if there is none: (UInt8Images, skipped files)."""
        cache = PreparedCache(self.cache_dir, self.split_fingerprint(split), self.root, paths)
        found = cache.load(labels)
        if found is None:
            rank_zero_info(f"{self.name}: decoding the {len(paths)} images of the {split} split once into {cache.npy}")
            shape = (self.channels, *image_hw(self.image_size))
            try:
                found = cache.build(self._decode, shape, labels, cpu_threads(), check_image)
            except OSError as error:  # an unwritable or full cache folder
                raise UsageError(
                    f"cannot write the cache in {self.cache_dir} ({error.strerror or error}); "
                    "choose another with --data.init_args.cache_dir or set --data.init_args.cache=false"
                ) from error
        return found

    def _load_split(self, split: str) -> tuple[Dataset, list[tuple[str, str]], int]:
        """The split's data set, its skipped files as (name, reason), and the number of files."""
        paths, labels = self.split_files(split)
        if self.cache:
            dataset, skipped = self._cached(split, paths, labels)
            return dataset, skipped, len(paths)
        if self.check_files:
            good, bad = scan(paths, cpu_threads())
        else:
            good, bad = list(range(len(paths))), []
        skipped = [(self._name_of(path), reason) for path, reason in bad]
        kept_labels = None if labels is None else [labels[i] for i in good]
        return ImageFiles([paths[i] for i in good], kept_labels, self.transform, self.channels), skipped, len(paths)

    def _decode(self, path: Path):
        return load_image(path, self.transform, self.channels)

    def _name_of(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def prepare_data(self) -> None:
        """Builds missing caches (Lightning calls this on one process per node, before `setup`)."""
        if self.cache:
            for split in self.splits:
                self._cached(split, self.split_files(split)[0], None)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        (train, train_skipped, train_total), (val, val_skipped, val_total) = map(self._load_split, self.splits)
        skipped = train_skipped + val_skipped
        if skipped:
            named = ", ".join(f"{name} ({reason})" for name, reason in skipped[:NAMED_IN_WARNING])
            more = f" and {len(skipped) - NAMED_IN_WARNING} more" if len(skipped) > NAMED_IN_WARNING else ""
            rank_zero_warn(
                f"{self.name}: skipped {len(skipped)} of {train_total + val_total} image files that cannot be read: "
                f"{named}{more}"
            )
        for split, dataset, total in ((self.splits[0], train, train_total), (self.splits[1], val, val_total)):
            if len(dataset) == 0:
                raise UsageError(f"{self.name}: no readable images in the {split} split ({total} files under {self.root})")
        if len(train) < self.batch_size:
            raise UsageError(
                f"{self.name}: the {self.splits[0]} split has {len(train)} images, fewer than batch_size={self.batch_size}"
            )
        self.train_set, self.val_set = train, val
