"""Drawing with Pillow alone: heat maps over images, labelled sheets of tiles, labelled sample grids.

Every sheet has the same layout, so its size follows from its content: `PAD` pixels around and between
tiles, a title line and a line of column labels (`LINE` pixels each) on top, then the rows of tiles.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

PAD = 4
LINE = 14
FONT = ImageFont.load_default()
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
MARK = (0, 255, 255)
# An inferno-like colour scale: black, purple, red, orange, light yellow at 0, 1/4, ..., 1.
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


def colorize(values: torch.Tensor) -> np.ndarray:
    """Values [H, W] in [0, 1] -> uint8 RGB [H, W, 3] on the colour scale."""
    x = values.clamp(0, 1).double().numpy() * (len(_ANCHORS) - 1)
    low = np.floor(x).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (x - low)[..., None]
    return ((1 - frac) * _ANCHORS[low] + frac * _ANCHORS[low + 1]).round().astype(np.uint8)


def to_pil(image: torch.Tensor, size: int) -> Image.Image:
    """An image [C, H, W] in [-1, 1] (1 or 3 channels) scaled to `size` pixels high (nearest) and as wide
    as its aspect ratio makes it (size x size for a square), as RGB."""
    x = image.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    height, width = x.shape[-2:]
    x = F.interpolate(x[None], size=(size, max(1, round(size * width / height))), mode="nearest")[0]
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def heat_overlay(image: torch.Tensor, heat: torch.Tensor, size: int, alpha: float = 0.6) -> Image.Image:
    """The map `heat` [h, w] (non-negative), upsampled bilinearly to the image, scaled to its own maximum
    and blended over the image [C, H, W] in [-1, 1] shown in gray `size` pixels high (see `to_pil`)."""
    gray = to_pil(image, size).convert("L").convert("RGB")
    up = F.interpolate(heat.float()[None, None], size=(gray.height, gray.width), mode="bilinear", align_corners=False)
    up = up[0, 0]
    up = up / up.max().clamp_min(1e-12)
    blended = (1 - alpha) * np.asarray(gray, dtype=np.float64) + alpha * colorize(up)
    return Image.fromarray(blended.round().astype(np.uint8))


def mark(tile: Image.Image, x: float, y: float, active: bool = True) -> Image.Image:
    """`tile` with a query point at fractions (x, y) of its width and height: a ring, filled when active."""
    draw = ImageDraw.Draw(tile)
    cx, cy, r = x * tile.width, y * tile.height, max(3, tile.width // 24)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=MARK, width=2, fill=MARK if active else None)
    return tile


def fit_text(text: str, width: int) -> str:
    """`text` shortened (ending in "..") until it is at most `width` pixels wide."""
    if FONT.getlength(text) <= width:
        return text
    while text and FONT.getlength(text + "..") > width:
        text = text[:-1]
    return text + ".."


def sheet_size(rows: int, columns: int, tile_width: int, tile_height: int, title: str = "") -> tuple[int, int]:
    """(width, height) of a sheet of rows x columns tiles (wider when the title needs it)."""
    width = max(PAD + columns * (tile_width + PAD), 2 * PAD + int(FONT.getlength(title)) + 1)
    return width, 2 * LINE + PAD + rows * (tile_height + PAD)


def sheet(title: str, column_labels: list[str], rows: list[list[Image.Image]]) -> Image.Image:
    """Tiles of one size in rows, under a title line and a line of column labels (each cut to its tile's width)."""
    tile_w, tile_h = rows[0][0].size
    out = Image.new("RGB", sheet_size(len(rows), len(rows[0]), tile_w, tile_h, title), BACKGROUND)
    draw = ImageDraw.Draw(out)
    draw.text((PAD, 1), title, fill=TEXT, font=FONT)
    for j, label in enumerate(column_labels):
        draw.text((PAD + j * (tile_w + PAD), LINE + 1), fit_text(label, tile_w), fill=TEXT, font=FONT)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            out.paste(tile, (PAD + j * (tile_w + PAD), 2 * LINE + PAD + i * (tile_h + PAD)))
    return out


def matrix(values: torch.Tensor, row_labels: list[str], column_labels: list[str], cell: int = 16) -> Image.Image:
    """A heat map of `values` [R, C] (scaled to its maximum), one cell per entry, rows labelled on the
    left and columns (written upwards) on top."""
    margin = int(max(FONT.getlength(label) for label in [*row_labels, *column_labels])) + PAD
    rows, columns = values.shape
    cells = torch.as_tensor(colorize(values / values.max().clamp_min(1e-12)))
    cells = cells.repeat_interleave(cell, 0).repeat_interleave(cell, 1).numpy()
    out = Image.new("RGB", (margin + columns * cell, margin + rows * cell), BACKGROUND)
    out.paste(Image.fromarray(cells), (margin, margin))
    draw = ImageDraw.Draw(out)
    for i, label in enumerate(row_labels):
        draw.text((margin - PAD - FONT.getlength(label), margin + i * cell + 2), label, fill=TEXT, font=FONT)
    top = Image.new("RGB", (margin, columns * cell), BACKGROUND)  # drawn sideways, then turned upright
    top_draw = ImageDraw.Draw(top)
    for j, label in enumerate(column_labels):
        top_draw.text((PAD, j * cell + 2), label, fill=TEXT, font=FONT)
    out.paste(top.rotate(90, expand=True), (margin, 0))
    return out


def labelled_columns(grid: torch.Tensor, names: list[str], cell: int, padding: int = 2) -> Image.Image:
    """A sample grid [3, H, W] in [0, 1] (torchvision's `make_grid` of `cell`-pixel images with `padding`)
    with the name of each column above it (`names`: one per column), written upwards when one is wider
    than its column."""
    pixels = grid.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255
    image = Image.fromarray(pixels.round().astype(np.uint8))
    upright = max(FONT.getlength(name) for name in names) > cell + padding
    height = int(max(FONT.getlength(name) for name in names)) + PAD if upright else LINE
    out = Image.new("RGB", (image.width, image.height + height), BACKGROUND)
    out.paste(image, (0, height))
    draw = ImageDraw.Draw(out)
    for j, name in enumerate(names):
        left = padding + j * (cell + padding)
        if upright:
            label = Image.new("RGB", (height, cell), BACKGROUND)
            ImageDraw.Draw(label).text((2, (cell - LINE) // 2), name, fill=TEXT, font=FONT)
            out.paste(label.rotate(90, expand=True), (left, 0))
        else:
            draw.text((left + (cell - FONT.getlength(name)) / 2, 1), name, fill=TEXT, font=FONT)
    return out
