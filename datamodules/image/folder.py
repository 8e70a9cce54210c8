"""Any folder of images: flat, or one subfolder per class; searched recursively.

    <root>/a.jpg, <root>/more/b.png, ...                  flat: unconditional
    <root>/<class>/x.jpg, <root>/<class>/sub/y.webp, ...  class subfolders: labels with use_labels=true

Files ending in .jpg, .jpeg, .png, .webp or .bmp (any case) are read; hidden folders are skipped. Each
real file is read once: symbolic links to what is already listed (loops such as `self -> .`, second names
of a file) and, unless `follow_links_outside`, links leading outside `root` are skipped and named in a
warning.
Each image is center-cropped to a square (`crop`: a fixed side, or the largest square) and resized to
`image_size`; with `image_size: [H, W]` it is instead scaled to cover H x W and center-cropped (the
largest centered box of that aspect ratio, resized: a folder of 3:2 photos trains at [64, 96] whole). A fixed fraction of the files (`val_fraction`, chosen by `split_seed`) is held out.
"""

import os
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn

from datamodules.image.decode import IMAGE_EXTENSIONS, CropResize, is_image_name
from datamodules.image.files import NAMED_IN_WARNING, ImageFilesDataModule
from sagan.errors import ImageSize, UsageError, check_ranges, image_hw


def list_images(root: Path, follow_links_outside: bool = False) -> list[Path]:
    """Image files under `root`, recursively, in sorted order, skipping hidden folders; each real file once
    (see `walk_images`)."""
    return walk_images(root, follow_links_outside)[0]


def walk_images(root: Path, follow_links_outside: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under `root`, recursively, in sorted order, skipping hidden folders; each real file once.

    Symbolic links are followed only to what the walk would not otherwise reach: a link to a folder or
    file already listed (a loop such as `self -> .`, or a second name for the same file) is skipped, and so
    is one that leads outside `root` (`up -> ..`) unless `follow_links_outside`. Real paths win over links.

    Returns:
        (the files, as paths under `root`; the skipped links as (name under root, reason)).
    """
    real_root = root.resolve()
    files: dict[Path, Path] = {}  # real file -> the path listed for it
    folders: set[Path] = set()  # real folders walked
    links: list[Path] = []  # links met on the way, handled after every real path is known
    skipped: list[tuple[str, str]] = []

    def name(path: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    def walk(folder: Path) -> None:
        folders.add(folder.resolve())
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_symlink():
                links.append(path)
            elif entry.is_dir():
                if not entry.name.startswith("."):
                    walk(path)
            elif is_image_name(path):
                files.setdefault(path.resolve(), path)

    walk(root)
    while links:
        link = links.pop(0)
        target = link.resolve()
        inside = target == real_root or target.is_relative_to(real_root)
        shown = os.readlink(link)
        if not target.exists():
            skipped.append((name(link), f"-> {shown}, a broken link"))
        elif target.is_dir() and target in folders:
            skipped.append((name(link), f"-> {shown}, a folder already listed"))
        elif target.is_file() and target in files:
            skipped.append((name(link), f"-> {shown}, the same file as {name(files[target])}"))
        elif not inside and not follow_links_outside:
            skipped.append((name(link), f"-> {shown}, outside the folder (follow_links_outside=true reads it)"))
        elif target.is_dir():
            walk(link)
        elif is_image_name(link) or is_image_name(target):
            files[target] = link
    return sorted(files.values()), skipped


class ImageFolderDataModule(ImageFilesDataModule):
    """A folder of images, flat or with class subfolders.

    Args:
        root: the image folder.
        batch_size: images per batch and per device.
        image_size: height and width after cropping and resizing, or [height, width].
        channels: 3 (RGB) or 1 (gray); files in any mode are converted.
        use_labels: class-conditional, one class per first-level subfolder (sorted by name); every
            image must then lie in a class subfolder.
        crop: side of the centered square cut from each image before resizing; None: the largest
            centered square (or, for a non-square image_size, the largest centered box of its shape).
        resample: resampling filter of the resize.
        val_fraction: fraction of the images held out for validation (at least one).
        split_seed: seed of the held-out choice; keep it fixed to compare runs.
        num_workers: DataLoader worker processes.
        cache: decode, crop and resize every image once into a uint8 cache file and train from it.
        cache_dir: where cache files go; None: `<root>/sagan_cache`.
        check_files: without the cache, decode every file once at start-up to find broken ones.
        follow_links_outside: also read what symbolic links lead to outside `root` (links to what is
            already listed, such as loops, are skipped in any case).
    """

    name = "folder"

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 64,
        image_size: ImageSize = 64,
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
        follow_links_outside: bool = False,
    ):
        super().__init__(root, batch_size, image_size, channels, use_labels, num_workers, cache, cache_dir, check_files)
        check_ranges(type(self).__name__, crop=(crop, "[1, inf)"), val_fraction=(val_fraction, "(0, 1)"))
        if crop is not None and isinstance(self.image_size, tuple):
            raise ValueError(f"{type(self).__name__}: crop cuts a square: leave it unset for image_size {list(self.image_size)}")
        self.transform = CropResize(self.image_size, crop, resample)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        if not self.root.is_dir():
            raise UsageError(f"image folder not found: {self.root} (give it with DATA_DIR=... or --data.init_args.root)")
        self.files, links = walk_images(self.root, follow_links_outside)
        if links:
            named = ", ".join(f"{link} ({reason})" for link, reason in links[:NAMED_IN_WARNING])
            more = f" and {len(links) - NAMED_IN_WARNING} more" if len(links) > NAMED_IN_WARNING else ""
            rank_zero_warn(f"{self.name}: skipped {len(links)} symbolic links under {self.root}: {named}{more}")
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
        height, width = image_hw(self.image_size)
        return f"folder({self.root.resolve()}):{held}:{self.transform.describe()}:{height}x{width}:{self.channels}ch"
