"""Your own hole masks: a folder of mask images as a mask source, and mask sources mixed by weight.

`MaskFolder` reads every image file under a folder (recursively, as image folders are listed: .png, .jpg,
.jpeg, .webp, .bmp; hidden folders skipped). A pixel whose gray value is at least 128 is a hole
(`invert`: one below 128 is; files in any mode are converted to gray as images are). Every file is checked
once when the source is made, before training: unreadable files (missing, empty, not an image,
truncated or corrupt), masks that are all hole and masks without a hole are left out and named in one
warning; a folder left with no mask is a start-up error. Should a file still fail later (say it changed
during the run), it is named in a warning once, left out, and another mask is drawn.

A training draw for an H x W image, every choice from the `torch.Generator` passed in (so a draw is a
function of the generator's state, as for the generated kinds of `datamodules.repair.masks`):

1. a mask file, uniformly;
2. a horizontal and a vertical flip, each with probability 1/2, and a turn by 0, 90, 180 or 270 degrees;
3. a scale s uniform in `scale` (s >= 1): the mask is resized (nearest neighbour) to s times the size
   at which it just covers H x W, so any mask size and aspect ratio fits any image;
4. a random H x W crop of it.

A crop that is all hole, or whose hole ratio is outside `hole_range`, is drawn again. `fixed(index, ...)`
gives validation masks: a fixed subset of the folder (the first `val_count` usable files in a fixed
shuffled order), mask `index % val_count` with its flips, turn, scale and crop drawn from (seed, index) alone.

`MaskMix` draws from several sources (generated kinds, a folder) with probabilities proportional to
their weights.
"""

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from datamodules.cache import map_in_threads
from datamodules.image.decode import check_image, to_channels
from datamodules.image.files import NAMED_IN_WARNING, cpu_threads
from datamodules.image.folder import list_images
from datamodules.repair.masks import _Draws, seed_for
from sagan.errors import UsageError, check_ranges

THRESHOLD = 128  # gray values at or above it are holes
FIXED_TAG = 0x464F4C44  # "FOLD": keeps the validation draws apart from other uses of the same seeds


def read_hole(path: Path, invert: bool = False) -> np.ndarray:
    """[h, w] bool, True = hole, of one mask file (raises on an unreadable one)."""
    with Image.open(path) as image:
        gray = np.asarray(to_channels(image, 1), dtype=np.uint8)
    hole = gray >= THRESHOLD
    return ~hole if invert else hole


def _why_bad(path: Path, invert: bool) -> str | None:
    """Why a mask file cannot be used, or None."""
    reason = check_image(path)
    if reason is not None:
        return reason
    try:
        hole = read_hole(path, invert)
    except Exception:  # noqa: BLE001 - PIL raises many kinds for broken files
        return "truncated or corrupt"
    if hole.all():
        return "all hole"
    if not hole.any():
        return "no hole"
    return None


class MaskFolder:
    """Hole masks read from a folder of mask images (see the module docstring).

    Args:
        root: the folder of mask images.
        scale: (low, high), 1 <= low <= high: range of the random scale relative to the size at which a
            mask just covers the image (1: the whole mask, cut to the image's shape; 2: a random window of
            half its side).
        hole_range: (low, high): only crops whose hole ratio lies in (low, high] (others are drawn
            again); None: any crop with a hole and a known pixel.
        invert: holes are the pixels below 128 (masks that are white where the image is valid).
        val_count: masks of the fixed validation subset (fewer when the folder has fewer).
        max_tries: draws before giving up (a RuntimeError names the folder and the range).
    """

    def __init__(
        self,
        root: str | Path,
        scale: tuple[float, float] = (1.0, 1.5),
        hole_range: tuple[float, float] | None = None,
        invert: bool = False,
        val_count: int = 100,
        max_tries: int = 100,
    ):
        check_ranges("MaskFolder", scale=(scale, "[1, inf)"), val_count=(val_count, "[1, inf)"),
                     max_tries=(max_tries, "[1, inf)"))
        if len(scale) != 2 or scale[0] > scale[1]:
            raise ValueError(f"MaskFolder: scale must be (low, high) with 1 <= low <= high, got {tuple(scale)}")
        if hole_range is not None and not 0.0 <= hole_range[0] < hole_range[1] <= 1.0:
            raise ValueError(f"MaskFolder: hole_range must satisfy 0 <= low < high <= 1, got {tuple(hole_range)}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise UsageError(f"mask folder not found: {self.root}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.hole_range = None if hole_range is None else (float(hole_range[0]), float(hole_range[1]))
        self.invert, self.max_tries = invert, max_tries
        files = list_images(self.root)
        reasons = list(map_in_threads(lambda p: _why_bad(p, invert), files, cpu_threads()))
        bad = [(path, reason) for path, reason in zip(files, reasons) if reason is not None]
        if bad:
            named = ", ".join(f"{self._name(path)} ({reason})" for path, reason in bad[:NAMED_IN_WARNING])
            more = f" and {len(bad) - NAMED_IN_WARNING} more" if len(bad) > NAMED_IN_WARNING else ""
            rank_zero_warn(f"mask folder: skipped {len(bad)} of {len(files)} mask files that cannot be used: {named}{more}")
        self.paths = [path for path, reason in zip(files, reasons) if reason is None]
        if not self.paths:
            raise UsageError(f"no usable mask in {self.root} ({len(files)} image files; holes are gray values >= "
                             f"{THRESHOLD}{', inverted' if invert else ''})")
        self.failed: set[Path] = set()
        order = torch.randperm(len(self.paths), generator=torch.Generator().manual_seed(0)).tolist()
        self.val_order = order[: min(val_count, len(self.paths))]

    def __repr__(self) -> str:
        return f"MaskFolder({str(self.root)!r}, {len(self.paths)} masks, scale={self.scale})"

    def _name(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def __call__(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """A training mask [1, height, width] of 0.0 (known) and 1.0 (hole)."""
        rng = _Draws(generator)
        for _ in range(self.max_tries):
            usable = [p for p in self.paths if p not in self.failed] if self.failed else self.paths
            if not usable:
                raise RuntimeError(f"none of the {len(self.paths)} masks in {self.root} can be read any more")
            mask = self._draw(usable[rng.integer(0, len(usable) - 1)], height, width, rng)
            if mask is not None:
                return mask
        low, high = self.hole_range or (0.0, 1.0)
        raise RuntimeError(
            f"no mask of {height}x{width} from {self.root} with a hole ratio in ({low}, {high}] and a known pixel "
            f"in {self.max_tries} draws"
        )

    def fixed(self, index: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
        """The validation mask of image `index`: from the fixed subset, drawn from (seed, index) alone."""
        generator = torch.Generator().manual_seed(seed_for(seed, index, FIXED_TAG))
        rng = _Draws(generator)
        subset = [self.paths[i] for i in self.val_order]
        for attempt in range(self.max_tries):
            path = subset[(index + attempt) % len(subset)]
            if path not in self.failed:
                mask = self._draw(path, height, width, rng)
                if mask is not None:
                    return mask
        raise RuntimeError(f"no validation mask of {height}x{width} from {self.root} in {self.max_tries} draws")

    def _draw(self, path: Path, height: int, width: int, rng: _Draws) -> torch.Tensor | None:
        """One flipped, turned, scaled and cropped mask of `path`, or None when it is to be drawn again."""
        try:
            hole = read_hole(path, self.invert)
        except Exception as error:  # noqa: BLE001 - a file broken after the start-up check: leave it out
            if path not in self.failed:
                self.failed.add(path)
                warnings.warn(f"skipping unreadable mask {path}: {error}", stacklevel=3)
            return None
        if rng.uniform(0, 1) < 0.5:
            hole = hole[:, ::-1]
        if rng.uniform(0, 1) < 0.5:
            hole = hole[::-1, :]
        hole = np.rot90(hole, rng.integer(0, 3))
        h, w = hole.shape
        s = max(height / h, width / w) * rng.uniform(*self.scale)
        size = (max(height, math.ceil(h * s - 1e-6)), max(width, math.ceil(w * s - 1e-6)))  # covers the image
        scaled = cv2.resize(np.ascontiguousarray(hole, dtype=np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        top, left = rng.integer(0, size[0] - height), rng.integer(0, size[1] - width)
        crop = scaled[top : top + height, left : left + width]
        if crop.shape != (height, width):  # cannot happen for a mask that decodes; treated as a broken file
            self.failed.add(path)
            warnings.warn(f"skipping mask {path}: {crop.shape} after scaling, not {(height, width)}", stacklevel=3)
            return None
        ratio = float(crop.mean())
        low, high = self.hole_range or (0.0, 1.0)
        if not (low < ratio <= high) or ratio >= 1.0:  # outside the range, or all hole
            return None
        return torch.from_numpy(crop.astype(np.float32)).unsqueeze(0)


class MaskMix:
    """Masks from several sources, each draw from one source chosen with probability proportional to its
    weight (the choice, too, from the generator passed in).

    Args:
        sources: name -> a mask source `(height, width, generator) -> [1, H, W]` (a `MaskGenerator`,
            a `MaskFolder`).
        weights: name -> weight (>= 0, not all 0), one per source.
    """

    def __init__(self, sources: dict[str, Callable], weights: dict[str, float]):
        check_ranges("MaskMix", **{f"weight of {name}": (weight, "[0, inf)") for name, weight in weights.items()})
        if set(sources) != set(weights) or not sum(weights.values()) > 0:
            raise ValueError(f"MaskMix: one weight per source, not all 0: sources {sorted(sources)}, weights {weights}")
        self.names = sorted(sources)
        self.sources = sources
        total = sum(weights.values())
        self.cumulative = np.cumsum([weights[name] / total for name in self.names]).tolist()
        self.weights = dict(weights)

    def __repr__(self) -> str:
        return f"MaskMix({self.weights})"

    @property
    def hole_range(self) -> tuple[float, float] | None:
        """The sources' common hole range."""
        return getattr(self.sources[self.names[0]], "hole_range", None)

    def __call__(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        choice = next((i for i, edge in enumerate(self.cumulative) if u < edge), len(self.names) - 1)
        return self.sources[self.names[choice]](height, width, generator)
