"""Decoding image files: any mode into RGB or gray, a centered crop and a resize, and finding broken files.

Everything here works on one file at a time with PIL and numpy and is safe to call from threads
(PIL releases the GIL while it decodes and resamples) and from DataLoader workers.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from sagan.errors import ImageSize, image_hw

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def is_image_name(path: Path) -> bool:
    """Whether a file name has one of the image extensions read here (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """Any PIL mode -> "RGB" (channels=3) or "L" (channels=1), 8 bits per channel.

    16-bit ("I;16*") and 32-bit integer ("I") images are scaled from [0, 65535] to [0, 255] (not
    clipped at 255, which turns most of a 16-bit image white); float ("F") images are taken to lie in
    [0, 255]. Transparency (RGBA, LA, palette with a transparent color) is composited over white.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode != "F":
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    elif mode == "P" and "transparency" in image.info or mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGB")
    return image.convert("RGB" if channels == 3 else "L")


@dataclass(frozen=True)
class CropResize:
    """A centered crop of the output's aspect ratio, then a resize to `size`.

    A square `size`: a centered square (of side `crop`, or the largest), resized. A non-square `size`
    [height, width]: the largest centered box of that aspect ratio, resized, which is the same as scaling
    the image to cover height x width and cropping the middle (a 3:2 photo fits a [64, 96] size whole).

    Args:
        size: output height and width, or [height, width].
        crop: side of the centered square cut from the source before resizing (CelebA: 178); None: the
            largest centered square. An image smaller than `crop` is cut to its largest square instead.
            Square sizes only.
        resample: resampling filter of the resize (PIL's, antialiased when shrinking).
    """

    size: ImageSize
    crop: int | None = None
    resample: Literal["bilinear", "bicubic", "lanczos"] = "bicubic"

    def __post_init__(self):
        height, width = image_hw(self.size)
        object.__setattr__(self, "size", height if height == width else (height, width))  # hashable, one spelling
        if height < 1 or width < 1 or (self.crop is not None and self.crop < 1):
            raise ValueError(f"size and crop must be >= 1, got size={self.size}, crop={self.crop}")
        if self.crop is not None and height != width:
            raise ValueError(f"crop cuts a square: leave it unset for the non-square size {list(self.size)}")
        if self.resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(RESAMPLE)}, got {self.resample!r}")

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        out_h, out_w = image_hw(self.size)
        if out_h == out_w:
            box_w = box_h = min(width, height, self.crop or width, self.crop or height)
        elif width * out_h > height * out_w:  # wider than the output: full height
            box_h, box_w = height, max(1, min(width, round(height * out_w / out_h)))
        else:
            box_w, box_h = width, max(1, min(height, round(width * out_h / out_w)))
        left, top = (width - box_w) // 2, (height - box_h) // 2
        image = image.crop((left, top, left + box_w, top + box_h))
        if (box_h, box_w) != (out_h, out_w):
            image = image.resize((out_w, out_h), RESAMPLE[self.resample])
        return image

    def describe(self) -> str:
        """A stable name of the transform for fingerprints and cache keys, e.g. `crop178-bicubic64`
        (non-square: `cropaspect-bicubic64x96`)."""
        if isinstance(self.size, tuple):
            return f"cropaspect-{self.resample}{self.size[0]}x{self.size[1]}"
        return f"crop{self.crop or 'square'}-{self.resample}{self.size}"


def load_image(path: Path, transform: CropResize, channels: int) -> np.ndarray:
    """One image file -> uint8 array [channels, H, W] (the transform's size). Raises on any unreadable file."""
    with Image.open(path) as image:
        image = transform(to_channels(image, channels))
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def check_image(path: Path) -> str | None:
    """Why an image file cannot be used ("missing", "empty file", "not an image", "truncated or
    corrupt"), or None when it decodes. JPEGs are decoded at reduced scale, which still reads the
    whole compressed stream, so a truncated file is found at a fraction of the cost of a full decode."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
    except OSError:
        return "missing"
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        return "too large (PIL's decompression-bomb limit)"
    except Exception:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError... for garbage
        return "not an image"
    try:
        with image:
            image.draft(image.mode, (1, 1))
            image.load()
    except Exception:
        return "truncated or corrupt"
    return None
