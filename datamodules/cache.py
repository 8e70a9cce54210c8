"""The prepared cache: every image of a split decoded, cropped and resized once into a uint8 `.npy` file.

A cache file holds `[N, C, H, W]` uint8 images and is memory-mapped when read, so DataLoader workers and
DDP ranks on a node share the operating system's page cache instead of each decoding JPEGs or holding a
copy. Its name carries the split's fingerprint (data set, split, transform, resolution, channels) and a
hash of the source files (relative paths, sizes, modification times): a new transform, resolution or
file set makes a new cache, and an unchanged one is reused by every later epoch and run. Both of its
files are written under temporary names and renamed, the index (`.json`) last, so an interrupted build
never leaves a cache that looks complete.
"""

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from sagan.errors import UsageError

FORMAT = 1  # bump when the layout of cache files changes
T, R = TypeVar("T"), TypeVar("R")


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """`map(fn, items)` in `threads` threads (PIL decodes without the GIL), results in order. An
    interruption (Ctrl-C, an error) cancels the work not yet started instead of waiting for it."""
    pool = ThreadPoolExecutor(max(1, threads))
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 images -> float32 tensor in [-1, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(127.5).sub_(1.0)


class UInt8Images(Dataset):
    """uint8 images `[N, C, H, W]`, in memory or in a memory-mapped `.npy` file, as
    `(float image [C, H, W] in [-1, 1], label)` pairs.

    Args:
        images: the array, or the path of a `.npy` file (opened lazily in each process).
        labels: one class index per item; None: every label is 0.
        rows: the array row of each item (a cache keeps the rows of unreadable files, unused); None: all.
    """

    def __init__(self, images: np.ndarray | Path, labels: Sequence[int] | None = None, rows: Sequence[int] | None = None):
        self.path = images if isinstance(images, Path) else None
        self._images = None if self.path else images
        count = len(rows) if rows is not None else len(self.images)
        self.rows = np.arange(count) if rows is None else np.asarray(rows, dtype=np.int64)
        self.labels = torch.zeros(count, dtype=torch.long) if labels is None else torch.as_tensor(labels, dtype=torch.long)
        if len(self.labels) != count:
            raise ValueError(f"{len(self.labels)} labels for {count} images")

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.path, mmap_mode="r")
        return self._images

    def __getstate__(self) -> dict:  # workers started by spawn re-open the file instead of receiving its bytes
        state = dict(self.__dict__)
        if self.path is not None:
            state["_images"] = None
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_unit_range(self.images[self.rows[index]]), self.labels[index]


def source_digest(root: Path, paths: Sequence[Path]) -> str:
    """Hash of the files a cache is made from: relative paths, sizes and modification times."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path.relative_to(root)}\0missing\n".encode())
    return digest.hexdigest()[:16]


class PreparedCache:
    """One split's cache files: `<dir>/<fingerprint as a file name>-<hash>.npy` and `.json`.

    Args:
        directory: where cache files live.
        fingerprint: the split's fingerprint (data set, split, transform, resolution, channels).
        root: the data set's root; file names in the index are relative to it.
        paths: the split's image files, in order.
    """

    def __init__(self, directory: Path, fingerprint: str, root: Path, paths: Sequence[Path]):
        self.root = root
        self.paths = list(paths)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", fingerprint).strip("_")[-80:]
        key = hashlib.sha256(f"{FORMAT}\0{fingerprint}\0{source_digest(root, self.paths)}".encode()).hexdigest()[:16]
        self.npy = directory / f"{slug}-{key}.npy"
        self.index = self.npy.with_suffix(".json")

    def load(self, labels: Sequence[int] | None) -> tuple[UInt8Images, list[tuple[str, str]]] | None:
        """The cached split and its skipped files, or None when there is no complete cache."""
        try:
            meta = json.loads(self.index.read_text())
            shape = np.load(self.npy, mmap_mode="r").shape
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT or list(shape) != meta["shape"]:
            return None
        rows = meta["rows"]
        kept = None if labels is None else [labels[row] for row in rows]
        return UInt8Images(self.npy, kept, rows), [tuple(item) for item in meta["skipped"]]

    def build(
        self,
        decode: Callable[[Path], np.ndarray],
        shape: tuple[int, int, int],
        labels: Sequence[int] | None,
        threads: int,
        check: Callable[[Path], str | None],
    ) -> tuple[UInt8Images, list[tuple[str, str]]]:
        """Decodes every file once (in `threads` threads) into the cache; unreadable files are left out
        and listed with `check`'s reason. Returns what `load` returns."""
        self.npy.parent.mkdir(parents=True, exist_ok=True)
        need = len(self.paths) * int(np.prod(shape))
        free = shutil.disk_usage(self.npy.parent).free
        if need > free:
            raise UsageError(f"cache needs {need / 2**30:.1f} GiB but {self.npy.parent} has {free / 2**30:.1f} GiB free")
        tmp_npy = self.npy.with_name(f"{self.npy.name}.tmp{os.getpid()}")
        tmp_index = self.index.with_name(f"{self.index.name}.tmp{os.getpid()}")

        def attempt(path: Path) -> np.ndarray | str:
            try:
                return decode(path)
            except Exception:
                return check(path) or "cannot be decoded"

        rows, skipped = [], []
        try:
            array = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.uint8, shape=(len(self.paths), *shape))
            for row, (path, result) in enumerate(zip(self.paths, map_in_threads(attempt, self.paths, threads))):
                if isinstance(result, str):
                    skipped.append((str(path.relative_to(self.root)), result))
                else:
                    array[row] = result
                    rows.append(row)
            array.flush()
            del array
            os.replace(tmp_npy, self.npy)
            meta = {"format": FORMAT, "shape": [len(self.paths), *shape], "rows": rows, "skipped": skipped}
            tmp_index.write_text(json.dumps(meta))
            os.replace(tmp_index, self.index)
        finally:
            tmp_npy.unlink(missing_ok=True)
            tmp_index.unlink(missing_ok=True)
        kept = None if labels is None else [labels[row] for row in rows]
        return UInt8Images(self.npy, kept, rows), skipped
