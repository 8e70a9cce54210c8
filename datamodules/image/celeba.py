"""CelebA: 202,599 aligned celebrity faces (178x218 JPEGs), the official train/valid/test partitions.

The layout is the one torchvision uses, under the data directory `root`:

    <root>/celeba/img_align_celeba/000001.jpg ... 202599.jpg
    <root>/celeba/list_eval_partition.txt        "000001.jpg 0" per line: 0 train, 1 valid, 2 test
    <root>/celeba/list_attr_celeba.txt, identity_CelebA.txt, list_bbox_celeba.txt,
    <root>/celeba/list_landmarks_align_celeba.txt   (annotations; not needed to train a GAN)

Each image gets the usual centered 178x178 crop and is resized to `image_size` (64 or 128).
CelebA has no classes: models trained on it are unconditional.
"""

from pathlib import Path
from typing import Literal

from datamodules.image.decode import CropResize
from datamodules.image.files import ImageFilesDataModule
from sagan.errors import UsageError, check_range

PARTITIONS = {"train": 0, "valid": 1, "test": 2}
SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images: img_align_celeba.zip, Eval/list_eval_partition.txt)"


def read_partition(path: Path) -> dict[str, int]:
    """`list_eval_partition.txt` -> {file name: partition}."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:  # an image, an archive, a binary download in its place
        raise UsageError(
            f"{path}: not a text file ({error.reason} at byte {error.start}); expected lines '<image>.jpg <0|1|2>' "
            f"(get Eval/list_eval_partition.txt from {SOURCE})"
        ) from error
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
    partition = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            shown = line.strip()[:60] + ("..." if len(line.strip()) > 60 else "")
            raise UsageError(f"{path}:{number}: expected '<image>.jpg <0|1|2>', got {shown!r}")
        partition[fields[0]] = int(fields[1])
    return partition


class CelebADataModule(ImageFilesDataModule):
    """CelebA faces, center-cropped to 178x178 and resized; unconditional.

    Args:
        root: the data directory holding `celeba/` (see the module docstring for the layout).
        batch_size: images per batch and per device.
        image_size: height and width after the crop and resize (64 or 128 are usual).
        channels: 3 (RGB) or 1 (gray).
        train_split: "train" (the official 162,770 images) or "all" (all three partitions, 202,599).
        crop: side of the centered square cut before resizing.
        num_workers: DataLoader worker processes.
        cache: decode, crop and resize every image once into a uint8 cache file and train from it.
        cache_dir: where cache files go; None: `<root>/sagan_cache`.
        check_files: without the cache, decode every file once at start-up to find broken ones.
        download: fetch the files with torchvision's downloader when they are missing (needs network
            access and the `gdown` package; Google Drive often refuses: then download by hand).
    """

    name = "celeba"
    dataset_classes = 0

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 64,
        image_size: int = 64,
        channels: int = 3,
        train_split: Literal["train", "all"] = "train",
        crop: int = 178,
        num_workers: int = 4,
        cache: bool = False,
        cache_dir: str | None = None,
        check_files: bool = True,
        download: bool = False,
    ):
        super().__init__(root, batch_size, image_size, channels, False, num_workers, cache, cache_dir, check_files)
        check_range(type(self).__name__, "crop", crop, "[1, inf)")
        if train_split not in ("train", "all"):
            raise ValueError(f"train_split must be 'train' or 'all', got {train_split!r}")
        self.splits = (train_split, "valid")
        self.transform = CropResize(image_size, crop)
        self.download = download
        self.folder = self.root / "celeba"
        self._partition: dict[str, int] | None = None
        if not download:
            self._check_layout()

    def _check_layout(self) -> None:
        images, partition = self.folder / "img_align_celeba", self.folder / "list_eval_partition.txt"
        if not images.is_dir() or not partition.is_file():
            raise UsageError(
                f"CelebA not found: expected {images}/*.jpg and {partition} (torchvision's layout); "
                f"get them from {SOURCE}, or set --data.init_args.download=true"
            )

    def prepare_data(self) -> None:
        if self.download:
            self._download()
        super().prepare_data()

    def _download(self) -> None:
        images, partition = self.folder / "img_align_celeba", self.folder / "list_eval_partition.txt"
        if images.is_dir() and partition.is_file():
            return
        from torchvision.datasets import CelebA

        try:
            CelebA(str(self.root), split="all", target_type=[], download=True)
        except Exception as error:  # no network, Google Drive quota, gdown missing, a bad checksum...
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise UsageError(
                f"CelebA download failed ({reason}); put the files in {self.folder} by hand: {SOURCE}"
            ) from error

    def partition(self) -> dict[str, int]:
        """{file name: partition (0 train, 1 valid, 2 test)} from `list_eval_partition.txt`."""
        if self._partition is None:
            self._check_layout()
            self._partition = read_partition(self.folder / "list_eval_partition.txt")
        return self._partition

    def split_files(self, split: str) -> tuple[list[Path], None]:
        wanted = set(PARTITIONS.values()) if split == "all" else {PARTITIONS[split]}
        names = sorted(name for name, part in self.partition().items() if part in wanted)
        return [self.folder / "img_align_celeba" / name for name in names], None
