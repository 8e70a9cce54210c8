"""CIFAR-10: 60,000 32x32 color images in 10 classes, from the python-pickle batches.

The layout torchvision uses, under the data directory `root`:

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   50,000 training images
    <root>/cifar-10-batches-py/test_batch                       10,000 images, the validation split here
    <root>/cifar-10-batches-py/batches.meta                     class names (optional)

Each batch is a pickled dict with b"data" (uint8 [N, 3072], the red, green then blue planes of each
32x32 image) and b"labels". The batches are read with an unpickler that accepts numpy arrays and plain
containers only, so a tampered file cannot run code. All images are held in memory as uint8.
"""

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.cache import UInt8Images
from datamodules.image.base import ImageDataModule
from sagan.errors import UsageError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
# label_names of batches.meta, in label order
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TEST_BATCH = "test_batch"
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it into the data directory)"
NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch -> uint8 images [N, 3, 32, 32] and int64 labels [N]."""
    try:
        with open(path, "rb") as file:
            batch = _ArraysOnly(file, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        images = data.reshape(len(data), 3, 32, 32)
    except Exception as error:
        raise UsageError(f"not a CIFAR-10 python batch: {path} ({' '.join(str(error).split())[:120]})") from error
    if len(labels) != len(images) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise UsageError(f"not a CIFAR-10 python batch: {path} ({len(images)} images, labels outside 0-9 or miscounted)")
    return images, labels


def resize_uint8(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 [N, 3, 32, 32] -> uint8 [N, channels, size, size] (antialiased bilinear; gray by luma)."""
    if channels == 3 and size == images.shape[-1]:
        return images
    x = torch.from_numpy(images).float()
    if channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 (10 classes): the five training batches, the test batch for validation.

    Args:
        root: the data directory holding `cifar-10-batches-py/`.
        batch_size: images per batch and per device.
        image_size: height and width; 32 is the native size, others are resized once at setup.
        channels: 3 (RGB) or 1 (gray).
        use_labels: expose the class labels, making the models class-conditional.
        num_workers: DataLoader worker processes (the data sits in memory: 0-2 suffice).
        download: fetch and extract the archive with torchvision's downloader when files are missing.
    """

    name = "cifar10"
    dataset_classes = 10

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 64,
        image_size: int = 32,
        channels: int = 3,
        use_labels: bool = True,
        num_workers: int = 2,
        download: bool = False,
    ):
        super().__init__(batch_size, image_size, channels, use_labels, num_workers)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.root = Path(root).expanduser()
        self.folder = self.root / "cifar-10-batches-py"
        self.download = download
        if not download:
            self._check_layout()

    def _missing(self) -> list[str]:
        return [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (self.folder / name).is_file()]

    def _check_layout(self) -> None:
        missing = self._missing()
        if missing:
            raise UsageError(
                f"CIFAR-10 not found: expected {self.folder}/data_batch_1..5 and test_batch "
                f"(missing: {', '.join(missing)}); get {SOURCE}, or set --data.init_args.download=true"
            )

    def prepare_data(self) -> None:
        if not self.download or not self._missing():
            return
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(self.root), train=True, download=True)
        except Exception as error:  # no network, a bad checksum, a full disk...
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise UsageError(f"CIFAR-10 download failed ({reason}); get {SOURCE} by hand") from error

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES) if self.num_classes else []

    @property
    def fingerprint(self) -> str:
        """The training split: data set, split, transform, resolution and channels."""
        size = self.image_size
        transform = "native" if size == 32 else f"bilinear{size}"
        return f"cifar10:train:{transform}:{size}x{size}:{self.channels}ch"

    def _split(self, names: tuple[str, ...]) -> UInt8Images:
        images, labels = zip(*(read_batch(self.folder / name) for name in names))
        images = resize_uint8(np.concatenate(images), self.image_size, self.channels)
        return UInt8Images(images, np.concatenate(labels).tolist())

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._check_layout()
        self.train_set = self._split(TRAIN_BATCHES)
        self.val_set = self._split((TEST_BATCH,))
        if len(self.train_set) < self.batch_size:
            raise UsageError(f"cifar10: {len(self.train_set)} training images, fewer than batch_size={self.batch_size}")
