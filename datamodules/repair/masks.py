"""Seeded hole masks for inpainting: the published recipes, any height and width.

A mask is a float tensor [1, H, W] of 0s and 1s, **1 = hole** (missing pixel), 0 = known pixel. Every
random choice comes from the `torch.Generator` passed in, so a mask is a function of the generator's
state: the same seed gives the same mask on every machine. Lengths and widths are given for a 256x256
image, as in the papers, and scaled by `min(H, W) / 256`.

| kind | recipe | hole ratio (300 draws each at 32x32, 64x64, 40x96, 256x256) |
|---|---|---|
| `strokes` | DeepFill v2 free-form brush strokes (Yu et al. 2019): 1-3 strokes of 4-12 vertices, width 12-40 | 0.013-0.53 |
| `lama_thin` | LaMa "thin" (Suvorov et al. 2022, configs/data_gen/random_thin_256.yaml): 4-50 strokes, width 5-14 | 0.015-0.50 |
| `lama_medium` | LaMa "medium": 4-5 strokes of width 5-54, or (p = 0.3 / 1.3) 1-5 boxes of side 10-50 | 0.002-0.50 |
| `lama_thick` | LaMa "thick": 1-5 strokes of width 5-104, or (p = 0.3 / 1.3) 1-3 boxes of side 30-150 | 0.007-0.50 |
| `boxes` | 1-3 axis-aligned rectangles, each side 10-50% of the image's | 0.009-0.45 |
| `scratches` | 1-4 long thin curves (0.5-1 image diagonal, width 0.5-1.5% of the side, at least 1 pixel) | 0.001-0.11 |
| `mixed` | a random one of the six above per draw; draws are united until the ratio exceeds `hole_range[0]` | `hole_range` |

LaMa's presets and `boxes` are capped at 50% hole area (LaMa's `max_tamper_area: 0.5`): a mask over the
cap is drawn again. `hole_range=(lo, hi)` asks for a ratio in (lo, hi] of any kind (drawn again until
it is); `SMALL = (0, 0.3)` and `LARGE = (0.3, 0.6)` are the evaluation buckets, and `fixed_mask` gives
the validation / test mask of an image index (small for even indices, large for odd ones).
"""

import math

import cv2
import numpy as np
import torch

SMALL = (0.0, 0.3)  # evaluation bucket "small": hole ratio in (0, 0.3]
LARGE = (0.3, 0.6)  # evaluation bucket "large": hole ratio in (0.3, 0.6]
BUCKETS = {"small": SMALL, "large": LARGE}
KINDS = ("strokes", "lama_thin", "lama_medium", "lama_thick", "boxes", "scratches", "mixed")

# LaMa's random_{thin,medium,thick}_256.yaml: irregular strokes and boxes, sizes in pixels at 256x256
LAMA = {
    "lama_thin": dict(box_p=0.0, times=(4, 50), max_width=10, max_angle=4, max_len=40),
    "lama_medium": dict(
        box_p=0.3, times=(4, 5), max_width=50, max_angle=4, max_len=100, boxes=(1, 5), box_size=(10, 50), margin=0
    ),
    "lama_thick": dict(
        box_p=0.3, times=(1, 5), max_width=100, max_angle=4, max_len=200, boxes=(1, 3), box_size=(30, 150), margin=10
    ),
}
CAP = 0.5  # LaMa's max_tamper_area


def seed_for(*keys: int) -> int:
    """A well-mixed 32-bit seed from non-negative integers (e.g. a run seed, a data epoch, an index)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0])


def hole_ratio(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of hole pixels: [..., 1, H, W] -> [...]."""
    return (mask != 0).float().mean(dim=(-3, -2, -1))


class _Draws:
    """Uniform, integer and normal draws from one torch.Generator, taken 64 uniforms at a time (one call
    to the generator per block: drawing strokes needs hundreds of small numbers)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.block: list[float] = []

    def _unit(self) -> float:
        if not self.block:
            self.block = torch.rand(64, generator=self.generator, dtype=torch.float64).tolist()[::-1]
        return self.block.pop()

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._unit()

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        return int(low) + min(int(self._unit() * (int(high) - int(low) + 1)), int(high) - int(low))

    def normal(self, mean: float, std: float) -> float:
        u, v = self._unit(), self._unit()  # Box-Muller
        return mean + std * math.sqrt(-2.0 * math.log(1.0 - u)) * math.cos(2.0 * math.pi * v)


def _line(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: float) -> None:
    # OpenCV draws thick lines with round ends, so consecutive segments join without gaps
    cv2.line(canvas, (round(x0), round(y0)), (round(x1), round(y1)), 1, max(1, round(width)), cv2.LINE_8)


def brush_strokes(h: int, w: int, rng: _Draws) -> np.ndarray:
    """DeepFill v2's free-form mask: 1-3 strokes of 4-12 vertices, each a random walk of segments of
    length ~ N(diagonal / 8, diagonal / 16) turning by about 2*pi/5, width 12-40 (at 256), randomly flipped."""
    canvas = np.zeros((h, w), np.uint8)
    scale = min(h, w) / 256
    radius = math.hypot(h, w) / 8
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    for _ in range(rng.integer(1, 3)):
        vertices = rng.integer(4, 12)
        low, high = mean_angle - rng.uniform(0, angle_range), mean_angle + rng.uniform(0, angle_range)
        width = rng.uniform(12, 40) * scale
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        for i in range(vertices):
            angle = rng.uniform(low, high)
            angle = 2 * math.pi - angle if i % 2 == 0 else angle
            length = min(max(rng.normal(radius, radius / 2), 0.0), 2 * radius)
            nx = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
            ny = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
            _line(canvas, x, y, nx, ny, width)
            x, y = nx, ny
    if rng.uniform(0, 1) > 0.5:
        canvas = canvas[:, ::-1]
    if rng.uniform(0, 1) > 0.5:
        canvas = canvas[::-1, :]
    return np.ascontiguousarray(canvas)


def lama_strokes(
    h: int, w: int, rng: _Draws, times: tuple[int, int], max_width: int, max_angle: int, max_len: int
) -> np.ndarray:
    """LaMa's irregular mask: `times` polylines of 1-5 segments at whole-radian angles, length
    10 + [0, max_len), width 5 + [0, max_width) (pixels at 256)."""
    canvas = np.zeros((h, w), np.uint8)
    scale = min(h, w) / 256
    for i in range(rng.integer(*times)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        for _ in range(1 + rng.integer(0, 4)):
            angle = 0.01 + rng.integer(0, max_angle - 1)
            angle = 2 * math.pi - angle if i % 2 == 0 else angle
            length = (10 + rng.integer(0, max_len - 1)) * scale
            width = (5 + rng.integer(0, max_width - 1)) * scale
            nx = min(max(x + length * math.sin(angle), 0.0), w - 1.0)
            ny = min(max(y + length * math.cos(angle), 0.0), h - 1.0)
            _line(canvas, x, y, nx, ny, width)
            x, y = nx, ny
    return canvas


def lama_boxes(
    h: int, w: int, rng: _Draws, boxes: tuple[int, int], box_size: tuple[int, int], margin: int
) -> np.ndarray:
    """LaMa's rectangle mask: `boxes` rectangles with sides in `box_size`, `margin` from the border (pixels at 256)."""
    canvas = np.zeros((h, w), np.uint8)
    scale = min(h, w) / 256
    margin = round(margin * scale)
    low = max(1, round(box_size[0] * scale))
    for _ in range(rng.integer(*boxes)):
        bw = rng.integer(min(low, w - 2 * margin), max(1, min(round(box_size[1] * scale), w - 2 * margin)))
        bh = rng.integer(min(low, h - 2 * margin), max(1, min(round(box_size[1] * scale), h - 2 * margin)))
        x0, y0 = rng.integer(margin, w - margin - bw), rng.integer(margin, h - margin - bh)
        canvas[y0 : y0 + bh, x0 : x0 + bw] = 1
    return canvas


def boxes(h: int, w: int, rng: _Draws) -> np.ndarray:
    """1-3 rectangles, each side 10-50% of the image's."""
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(rng.integer(1, 3)):
        bh = max(1, round(rng.uniform(0.1, 0.5) * h))
        bw = max(1, round(rng.uniform(0.1, 0.5) * w))
        y0, x0 = rng.integer(0, h - bh), rng.integer(0, w - bw)
        canvas[y0 : y0 + bh, x0 : x0 + bw] = 1
    return canvas


def scratches(h: int, w: int, rng: _Draws) -> np.ndarray:
    """1-4 long thin scratches: slightly bent curves (quadratic Bezier) 0.5-1 image diagonal long, width
    0.5-1.5% of the shorter side (at least one pixel), as on old prints."""
    canvas = np.zeros((h, w), np.uint8)
    diagonal = math.hypot(h, w)
    for _ in range(rng.integer(1, 4)):
        length = rng.uniform(0.5, 1.0) * diagonal
        angle = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)  # the middle of the scratch
        dx, dy = 0.5 * length * math.cos(angle), 0.5 * length * math.sin(angle)
        bend = rng.uniform(-0.1, 0.1) * length  # control point offset, perpendicular
        control = (cx - bend * math.sin(angle), cy + bend * math.cos(angle))
        width = max(1.0, rng.uniform(0.005, 0.015) * min(h, w))
        points = []
        for t in np.linspace(0, 1, 17):
            a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t**2
            x = a * (cx - dx) + b * control[0] + c * (cx + dx)
            y = a * (cy - dy) + b * control[1] + c * (cy + dy)
            points.append((x, y))
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            _line(canvas, x0, y0, x1, y1, width)
    return canvas


class MaskGenerator:
    """Hole masks of one recipe (see the module docstring for the recipes and their hole ratios).

    Args:
        kind: "strokes", "lama_thin", "lama_medium", "lama_thick", "boxes", "scratches" or "mixed".
        hole_range: (low, high): only masks whose hole ratio lies in (low, high] (others are drawn
            again); None: the recipe's own range. "mixed" unites draws until the ratio exceeds low.
            0 <= low < high <= 1.
        max_tries: draws before giving up on `hole_range` (a RuntimeError names the kind and range).
    """

    def __init__(self, kind: str = "mixed", hole_range: tuple[float, float] | None = None, max_tries: int = 1000):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if hole_range is not None and not 0.0 <= hole_range[0] < hole_range[1] <= 1.0:
            raise ValueError(f"hole_range must satisfy 0 <= low < high <= 1, got {tuple(hole_range)}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.kind = kind
        self.hole_range = None if hole_range is None else (float(hole_range[0]), float(hole_range[1]))
        self.max_tries = max_tries

    def __repr__(self) -> str:
        return f"MaskGenerator(kind={self.kind!r}, hole_range={self.hole_range})"

    def __call__(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """A mask [1, height, width] of 0.0 (known) and 1.0 (hole)."""
        if height < 1 or width < 1:
            raise ValueError(f"mask size must be at least 1x1, got {height}x{width}")
        rng = _Draws(generator)
        low, high = self.hole_range or (0.0, 1.0)
        for _ in range(self.max_tries):
            if self.kind == "mixed":
                canvas = self._union(height, width, rng, low)
            else:
                canvas = self._draw(self.kind, height, width, rng)
            ratio = float(canvas.mean())
            if low < ratio <= high:
                return torch.from_numpy(canvas.astype(np.float32)).unsqueeze(0)
        raise RuntimeError(
            f"no {self.kind} mask of {height}x{width} with a hole ratio in ({low}, {high}] in {self.max_tries} draws"
        )

    def _union(self, h: int, w: int, rng: _Draws, low: float) -> np.ndarray:
        canvas = np.zeros((h, w), np.uint8)
        while canvas.mean() <= low or not canvas.any():
            canvas |= self._draw(KINDS[rng.integer(0, len(KINDS) - 2)], h, w, rng)
        return canvas

    def _draw(self, kind: str, h: int, w: int, rng: _Draws) -> np.ndarray:
        while True:  # the recipes' own cap (strokes and scratches have none)
            if kind == "strokes":
                return brush_strokes(h, w, rng)
            if kind == "scratches":
                return scratches(h, w, rng)
            if kind == "boxes":
                canvas = boxes(h, w, rng)
            else:
                preset = LAMA[kind]
                box_p = preset["box_p"]
                if box_p and rng.uniform(0, 1 + box_p) >= 1:  # LaMa picks one generator, p proportional to 1 : box_p
                    canvas = lama_boxes(h, w, rng, preset["boxes"], preset["box_size"], preset["margin"])
                else:
                    strokes = (preset["times"], preset["max_width"], preset["max_angle"], preset["max_len"])
                    canvas = lama_strokes(h, w, rng, *strokes)
            if canvas.mean() <= CAP:
                return canvas


def fixed_mask(index: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """The evaluation mask of image `index`: a "mixed" mask, small (hole ratio in (0, 0.3]) for even
    indices and large ((0.3, 0.6]) for odd ones, drawn from a generator seeded by (seed, index) alone:
    the same on every machine, in every run and on every rank."""
    bucket = SMALL if index % 2 == 0 else LARGE
    generator = torch.Generator().manual_seed(seed_for(seed, index, 0x4D41534B))  # "MASK"
    return MaskGenerator("mixed", hole_range=bucket)(height, width, generator)
