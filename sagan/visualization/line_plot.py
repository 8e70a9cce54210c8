"""A line chart drawn with Pillow alone (the project has no plotting library): curves of labelled points.

Used by the text GAN's quality-diversity benchmark (NLL-oracle against NLL-test over a temperature sweep),
but it knows nothing of text: each curve is a name, a colour and a list of (x, y, label) points.
"""

import math
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

FONT = ImageFont.load_default()
BACKGROUND = (255, 255, 255)
AXES = (0, 0, 0)
GRID = (225, 225, 225)
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


@dataclass
class Curve:
    """One curve of a chart: its legend name and its points (x, y, a short label printed beside the point)."""

    name: str
    points: list[tuple[float, float, str]] = field(default_factory=list)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values spanning [low, high]."""
    raw = max(high - low, 1e-9) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step) + 1)]


def line_chart(
    curves: list[Curve], title: str, x_label: str, y_label: str, size: tuple[int, int] = (720, 520)
) -> Image.Image:
    """The curves on shared axes (ranges from the points, 5% margin), with a legend and point labels."""
    width, height = size
    left, right, top, bottom = 60, 20, 30, 45
    xs = [x for c in curves for x, _, _ in c.points]
    ys = [y for c in curves for _, y, _ in c.points]
    if not xs:
        raise ValueError("line_chart needs at least one point")
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    mx, my = max(x1 - x0, 1e-6) * 0.05, max(y1 - y0, 1e-6) * 0.05
    x0, x1, y0, y1 = x0 - mx, x1 + mx, y0 - my, y1 + my

    def to_px(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x0) / (x1 - x0) * (width - left - right)
        py = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return px, py

    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    for tx in _ticks(x0, x1):
        px, _ = to_px(tx, y0)
        draw.line([(px, top), (px, height - bottom)], fill=GRID)
        draw.text((px - 12, height - bottom + 4), f"{tx:g}", fill=AXES, font=FONT)
    for ty in _ticks(y0, y1):
        _, py = to_px(x0, ty)
        draw.line([(left, py), (width - right, py)], fill=GRID)
        draw.text((4, py - 6), f"{ty:g}", fill=AXES, font=FONT)
    draw.rectangle([left, top, width - right, height - bottom], outline=AXES)
    draw.text((left, 8), title, fill=AXES, font=FONT)
    draw.text(((width - len(x_label) * 6) // 2, height - 18), x_label, fill=AXES, font=FONT)
    draw.text((4, top - 16), y_label, fill=AXES, font=FONT)
    for i, curve in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        pixels = [to_px(x, y) for x, y, _ in curve.points]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for (px, py), (_, _, label) in zip(pixels, curve.points):
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
            if label:
                draw.text((px + 5, py - 12), label, fill=colour, font=FONT)
        draw.line([(width - right - 150, top + 12 + 14 * i), (width - right - 130, top + 12 + 14 * i)], fill=colour, width=2)
        draw.text((width - right - 125, top + 6 + 14 * i), curve.name, fill=colour, font=FONT)
    return image
