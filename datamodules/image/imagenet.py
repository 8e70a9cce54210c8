"""ImageNet (ILSVRC-2012) from class folders, as most copies of it are laid out:

    <root>/imagenet/train/n01440764/n01440764_10026.JPEG ...   1,000 class folders named by WordNet id
    <root>/imagenet/val/n01440764/ILSVRC2012_val_00000293.JPEG ...   (optional) validation, same layout

Classes are the training folders in sorted order (the usual label order, n01440764 = 0). Validation
is `val/` when it holds class folders (torchvision's and the common `valprep.sh` layout); without it,
`val_fraction` of the training images is held out. Each image is center-cropped to its largest square
and resized (`image_size`, 128 for SAGAN's ImageNet model). The data module checks that every
validation class exists in training; it does not insist on 1,000 classes, so subsets (ImageNet-100,
a few classes for a smoke test) work the same way.
"""

import os
from pathlib import Path
from typing import Literal

import torch

from datamodules.image.decode import CropResize, is_image_name
from datamodules.image.files import ImageFilesDataModule
from sagan.errors import ImageSize, UsageError, image_hw


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """Class folder name -> its image files (recursively, sorted); hidden folders skipped."""
    classes = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            files = []
            for sub, subfolders, names in os.walk(entry.path, followlinks=True):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                files.extend(Path(sub) / name for name in names if is_image_name(Path(name)))
            classes[entry.name] = sorted(files)
    return classes


class ImageNetDataModule(ImageFilesDataModule):
    """ImageNet from class folders, class-conditional by default.

    Args:
        root: the data directory holding `imagenet/train/<wnid>/` (and optionally `imagenet/val/<wnid>/`).
        batch_size: images per batch and per device.
        image_size: height and width after cropping the largest centered square and resizing, or
            [height, width] (the largest centered box of that shape).
        channels: 3 (RGB) or 1 (gray).
        use_labels: expose the classes (WordNet ids in sorted order), making the models class-conditional.
        resample: resampling filter of the resize.
        val_fraction: fraction of the training images held out when there is no `val/` folder.
        split_seed: seed of that held-out choice.
        num_workers: DataLoader worker processes (JPEG decoding: as many as the CPU cores allow).
        cache: decode, crop and resize every image once into a uint8 cache file (63 GB at 128x128).
        cache_dir: where cache files go; None: `<root>/imagenet/sagan_cache`.
        check_files: without the cache, decode every file once at start-up to find broken ones.
    """

    name = "imagenet"

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 256,
        image_size: ImageSize = 128,
        channels: int = 3,
        use_labels: bool = True,
        resample: Literal["bilinear", "bicubic", "lanczos"] = "bicubic",
        val_fraction: float = 0.01,
        split_seed: int = 0,
        num_workers: int = 8,
        cache: bool = False,
        cache_dir: str | None = None,
        check_files: bool = False,
    ):
        folder = Path(root).expanduser() / "imagenet"
        super().__init__(str(folder), batch_size, image_size, channels, use_labels, num_workers, cache, cache_dir,
                         check_files)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.transform = CropResize(self.image_size, None, resample)
        self.val_fraction, self.split_seed = val_fraction, split_seed
        train = folder / "train"
        if not train.is_dir():
            raise UsageError(
                f"ImageNet not found: expected {train}/<wnid>/*.JPEG (the ILSVRC-2012 training images in class "
                "folders, from https://image-net.org/download); give the folder holding imagenet/ with DATA_DIR=..."
            )
        train_classes = {name: files for name, files in class_folders(train).items() if files}
        if not train_classes:
            raise UsageError(f"no class folders with images in {train} (expected {train}/<wnid>/*.JPEG)")
        self.classes = sorted(train_classes)
        self.dataset_classes = len(self.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        files = [(path, index[name]) for name, paths in train_classes.items() for path in paths]
        val = folder / "val"
        val_classes = {name: f for name, f in class_folders(val).items() if f} if val.is_dir() else {}
        if val_classes:
            unknown = sorted(set(val_classes) - set(index))
            if unknown:
                raise UsageError(f"{val} has class folders that {train} lacks: {', '.join(unknown[:5])}")
            self._splits = {"train": files, "valid": [(p, index[n]) for n, paths in val_classes.items() for p in paths]}
            self.held_out = "val"
        else:
            order = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed)).tolist()
            held = max(1, round(val_fraction * len(files)))
            self._splits = {"train": [files[i] for i in sorted(order[held:])],
                            "valid": [files[i] for i in sorted(order[:held])]}
            self.held_out = f"train(val_fraction={val_fraction:g},seed={split_seed})"

    def split_files(self, split: str) -> tuple[list[Path], list[int] | None]:
        pairs = self._splits[split]
        return [path for path, _ in pairs], [label for _, label in pairs]

    def split_fingerprint(self, split: str) -> str:
        height, width = image_hw(self.image_size)
        return (f"imagenet({self.root.resolve()},{self.dataset_classes}cls):{split}(valid={self.held_out}):"
                f"{self.transform.describe()}:{height}x{width}:{self.channels}ch")
