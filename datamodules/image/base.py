"""Shared plumbing of image data modules: loaders and the facts that networks are built from.

A subclass provides `train_set` and `val_set` in `setup` (datasets of `(image, label)` with images as
float tensors in [-1, 1], shape [channels, H, W], H x W being `image_size`: one side, or [height, width])
and sets `dataset_classes`.
`image_size`, `channels` and `num_classes` are linked into the networks by the CLI. `fingerprint`
describes the training images for caches of statistics computed from them (`sagan.evaluation.metrics`).
"""

import inspect

import lightning as L
from torch.utils.data import DataLoader, Dataset

from datamodules.resumable import rank_loader
from sagan.errors import ImageSize, check_image_size, check_ranges


class ImageDataModule(L.LightningDataModule):
    """Base class of image data modules.

    Args:
        batch_size: images per batch and per device.
        image_size: height and width of the images the networks see, or [height, width].
        channels: image channels the networks see.
        use_labels: expose class labels, making the models class-conditional.
        num_workers: DataLoader worker processes.
    """

    dataset_classes: int = 0
    # Feature extractor of the sample-quality metrics (import path; `sagan.evaluation.metrics.SampleQuality`).
    metric_features: str | None = "sagan.evaluation.features.InceptionFeatures"

    def __init__(
        self, batch_size: int = 64, image_size: ImageSize = 32, channels: int = 3, use_labels: bool = True,
        num_workers: int = 0,
    ):
        super().__init__()
        check_ranges(
            type(self).__name__, batch_size=(batch_size, "[1, inf)"), channels=(channels, "[1, inf)"),
            num_workers=(num_workers, "[0, inf)"),
        )
        height, width = check_image_size(type(self).__name__, image_size)
        self.batch_size = batch_size
        # one side for a square (so [64, 64] is 64 everywhere), else (height, width): linked into the networks
        self.image_size: ImageSize = height if height == width else (height, width)
        self.channels = channels
        self.use_labels = use_labels
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """Classes the models are conditioned on: 0 when labels are off or the data has none."""
        return self.dataset_classes if self.use_labels else 0

    @property
    def fingerprint(self) -> str:
        """The training images in one line (data set, split, transform, resolution, channels), for caches
        of statistics computed from them. This default names the class and every constructor argument
        except those that do not change the images; subclasses may spell it out."""
        skip = {"self", "batch_size", "num_workers", "use_labels"}
        names = []  # the constructor arguments of every class from this one up to ImageDataModule
        for cls in type(self).__mro__[: type(self).__mro__.index(ImageDataModule) + 1]:
            params = inspect.signature(cls.__init__).parameters
            names += [n for n in params if n not in skip and n not in names and hasattr(self, n)]
        args = ",".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__module__}.{type(self).__qualname__}({args}):train"

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        # Each rank reads its own share. Training batches come in an order fixed by the run's seed, and the
        # loader's position goes into checkpoints (resumable.py); whole batches keep batch-norm statistics
        # and step costs stable.
        return rank_loader(self.trainer, dataset, self.batch_size, train, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    @property
    def class_names(self) -> list[str]:
        """Names of the classes the models are conditioned on, in index order (here: their indices)."""
        return [str(i) for i in range(self.num_classes)]

    def predict_dataloader(self) -> DataLoader:
        """`sagan predict`: the held-out images, whose labels the generator's samples take."""
        return self._loader(self.val_set, train=False)
