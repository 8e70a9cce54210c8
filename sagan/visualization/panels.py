"""Attention panels: where a query looks, drawn over the image (as in Figure 1 of the SAGAN paper), and
token-by-token heat maps for sequences.

An image panel belongs to one attention layer. Each row is one query point, marked on the image in the
first column; the next columns show that query's row of softmax weights for each head and their mean
over heads, reshaped to the grid of the keys (a quarter of the positions when keys are pooled),
upsampled bilinearly to the image and laid over it in gray. Each map is coloured relative to its own
maximum: softmax rows over many positions are small everywhere (about 1 / keys), which drawn on an
absolute scale looks black. A ViT's class token gets one row: its weights over the patches. The title
names the layer, its query and key grids and its gate gamma (the weight of attention in `x + gamma * o`).

Query points are fractions (x, y) of the image's width and height, so the same points land on the same
place of the image at every layer's resolution; a point picks the query cell it falls into.
"""

import math

import torch
from PIL import Image
from torch import nn

from sagan.visualization.capture import (
    AttentionRecord,
    attention_layers,
    record_attention,
)
from sagan.visualization.render import heat_overlay, mark, matrix, sheet, to_pil

NETWORKS = ("generator", "discriminator")


def query_points(k: int, seed: int = 0) -> torch.Tensor:
    """`k` query points (x, y), fractions of the image's width and height in [0.15, 0.85), seeded."""
    if k < 1:
        raise ValueError(f"the number of query points must be >= 1, got {k}")
    return 0.15 + 0.7 * torch.rand(k, 2, generator=torch.Generator().manual_seed(seed))


def image_layout(
    record: AttentionRecord, image_hw: tuple[int, int] | None = None
) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(query grid, key grid, tokens before the grid) of a layer of an image network: the grids it
    recorded, or for a token list the grid of patches of the image's shape `image_hw` (square when not
    given), behind one class token if there is one."""
    if record.query_grid is not None:
        return record.query_grid, record.key_grid, 0
    tokens = record.weights.shape[-1]
    height, width = image_hw or (1, 1)
    for prefix in (0, 1):
        columns = math.isqrt((tokens - prefix) * width // height) if tokens > prefix else 0
        for gw in (columns, columns + 1):  # the grid of the image's aspect ratio
            if gw and (tokens - prefix) % gw == 0 and (tokens - prefix) // gw * width == gw * height:
                grid = ((tokens - prefix) // gw, gw)
                return grid, grid, prefix
    raise ValueError(f"{record.name}: {tokens} tokens form no grid of patches of a {height}x{width} image")


def query_maps(record: AttentionRecord, points: torch.Tensor, sample: int = 0, image_hw: tuple[int, int] | None = None):
    """The maps one panel draws: (row names, maps [rows, heads (+1 for the mean when heads > 1), Hk, Wk],
    query cells (row, col) per row or None for a class token). A query's maps are its softmax rows."""
    (hq, wq), (hk, wk), prefix = image_layout(record, image_hw)
    weights = record.weights[sample]  # [heads, queries, keys]
    if weights.shape[0] > 1:
        weights = torch.cat([weights, weights.mean(0, keepdim=True)])
    if prefix:  # a class token: its row over the patches
        return ["class token"], weights[:, :1, prefix:].reshape(-1, 1, hk, wk).transpose(0, 1), None
    cells = [(min(int(y * hq), hq - 1), min(int(x * wq), wq - 1)) for x, y in points.tolist()]
    rows = torch.stack([weights[:, r * wq + c].reshape(-1, hk, wk) for r, c in cells])
    return [f"query ({r}, {c})" for r, c in cells], rows, cells


def grid_panel(record: AttentionRecord, image: torch.Tensor, points: torch.Tensor, tile: int, title: str) -> Image.Image:
    """One layer's panel for the image [C, H, W] in [-1, 1] it saw (see the module's docstring)."""
    image_hw = tuple(image.shape[-2:])
    _, maps, cells = query_maps(record, points, image_hw=image_hw)
    (hq, wq), (hk, wk), _ = image_layout(record, image_hw)
    heads = record.weights.shape[1]
    rows = []
    for i, row in enumerate(maps):
        first = to_pil(image, tile)
        where = None if cells is None else ((cells[i][1] + 0.5) / wq, (cells[i][0] + 0.5) / hq)
        if where is not None:
            mark(first, *where)
        tiles = [heat_overlay(image, heat, tile) for heat in row]
        if where is not None:
            tiles = [mark(t, *where, active=False) for t in tiles]
        rows.append([first, *tiles])
    labels = ["query" if cells is not None else "class token", *(f"head {h}" for h in range(heads))]
    labels += ["mean"] if heads > 1 else []
    gamma = f", gamma {record.gamma:+.4f}" if record.gamma is not None else ""
    return sheet(f"{title}: {hq}x{wq} queries, {hk}x{wk} keys{gamma}", labels, rows)


def sequence_panel(record: AttentionRecord, query_labels: list[str], key_labels: list[str], title: str) -> Image.Image:
    """One layer's token-by-token heat maps of the first sequence: one matrix per head (and the mean),
    queries down, keys across; each matrix coloured relative to its maximum, printed above it."""
    weights = record.weights[0]
    if weights.shape[0] > 1:
        weights = torch.cat([weights, weights.mean(0, keepdim=True)])
    tiles = [matrix(w, query_labels, key_labels) for w in weights]
    heads = record.weights.shape[1]
    labels = [f"{'mean' if h == heads else f'head {h}'} (max {w.max():.2f})" for h, w in enumerate(weights)]
    return sheet(f"{title}: {weights.shape[1]} queries x {weights.shape[2]} keys", labels, [tiles])


def network_layers(networks: dict[str, nn.Module]) -> list[str]:
    """Full names (`generator.attention.0`) of the attention layers of the networks."""
    return [f"{net}.{name}" for net, module in networks.items() if module is not None for name in attention_layers(module)]


def _split(layers: list[str] | None, networks: dict[str, nn.Module]) -> dict[str, list[str] | None]:
    """Layer names per network for `record_attention` (None: all of its layers)."""
    if layers is None:
        return {net: None for net in networks}
    known = network_layers(networks)
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"no attention layer {', '.join(unknown)}; the layers are: {', '.join(known) or 'none'}")
    return {net: [name.split(".", 1)[1] for name in layers if name.split(".", 1)[0] == net] for net in networks}


@torch.no_grad()
def image_gan_panels(
    generator: nn.Module, discriminator: nn.Module | None, z: torch.Tensor, y: torch.Tensor | None,
    real: torch.Tensor | None = None, real_y: torch.Tensor | None = None, points: torch.Tensor | None = None,
    layers: list[str] | None = None, tile: int | None = None,
) -> dict[str, Image.Image]:
    """Panels of every attention layer (or those named in `layers`) of the generator for its sample of
    z [1, z_dim] (label y [1] or None), and of the discriminator for `real` [1, C, H, W] (label `real_y`);
    keyed by layer name. `points` [K, 2] default to 4 seeded points."""
    points = query_points(4) if points is None else points
    wanted = _split(layers, {"generator": generator, "discriminator": discriminator})
    panels = {}
    with record_attention(generator, wanted["generator"]) as records:
        fake = generator(z, y)
    tile = tile or max(96, fake.shape[-1])
    for name, record in records.items():
        panels[f"generator.{name}"] = grid_panel(record, fake[0], points, tile, f"generator.{name}")
    if discriminator is not None and real is not None and wanted["discriminator"] != []:
        pack = getattr(discriminator, "pack", 1)  # a packing discriminator judges groups of `pack` images
        with record_attention(discriminator, wanted["discriminator"]) as records:
            discriminator(real.repeat(pack, 1, 1, 1), real_y)
        for name, record in records.items():
            panels[f"discriminator.{name}"] = grid_panel(record, real[0], points, tile, f"discriminator.{name}")
    return panels


@torch.no_grad()
def text_gan_panels(
    generator: nn.Module, discriminator: nn.Module | None, tokens: torch.Tensor, token_names: list[str],
    layers: list[str] | None = None,
) -> dict[str, Image.Image]:
    """Token-by-token panels of one sequence `tokens` [1, T] (`token_names`: its T tokens as text): the
    generator read with teacher forcing (position t sees the start and tokens before t and predicts
    token t), and the discriminator reading the whole sequence; keyed by layer name."""
    wanted = _split(layers, {"generator": generator, "discriminator": discriminator})
    panels = {}
    inputs = ["<start>", *token_names[:-1]]  # what each position reads; rows: ">token" it predicts
    with record_attention(generator, wanted["generator"]) as records:
        generator(tokens)
    for name, record in records.items():
        predicts = [f">{token}" for token in token_names]
        panels[f"generator.{name}"] = sequence_panel(record, predicts, inputs, f"generator.{name}")
    if discriminator is not None and wanted["discriminator"] != []:
        with record_attention(discriminator, wanted["discriminator"]) as records:
            discriminator(tokens)
        for name, record in records.items():
            panels[f"discriminator.{name}"] = sequence_panel(record, token_names, token_names, f"discriminator.{name}")
    return panels
