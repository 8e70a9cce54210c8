"""Positional encodings for token grids: fixed sinusoids (Vaswani et al., 2017) or learned tables.

A 2-D sinusoidal encoding spends the first half of the channels on the row index and the second half
on the column index, each with the 1-D formula

    PE(p, 2i) = sin(p / 10000^(2i / d)),    PE(p, 2i + 1) = cos(p / 10000^(2i / d)),

where `d` is the number of channels given to that axis.
"""

from typing import Literal

import torch
from torch import nn


def sinusoidal_encoding(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """[P] positions -> [P, dim] encodings with sines in even and cosines in odd channels."""
    if dim % 2:
        raise ValueError(f"sinusoidal_encoding: dim must be even, got {dim}")
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # [dim / 2]
    angles = positions.to(torch.float64)[:, None] * frequencies[None, :]  # [P, dim / 2]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()  # interleaved sin, cos


def sinusoidal_encoding_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """[height * width, dim] encodings of a row-major grid: rows in channels [0, dim/2), columns after."""
    if dim % 4:
        raise ValueError(f"sinusoidal_encoding_2d: dim must be a multiple of 4, got {dim}")
    rows = sinusoidal_encoding(torch.arange(height), dim // 2)  # [H, dim/2]
    cols = sinusoidal_encoding(torch.arange(width), dim // 2)  # [W, dim/2]
    grid = torch.cat([rows[:, None, :].expand(-1, width, -1), cols[None, :, :].expand(height, -1, -1)], dim=-1)
    return grid.reshape(height * width, dim)


class PositionalEncoding2d(nn.Module):
    """Adds a position code to each token of a `height x width` grid (row-major order).

    Args:
        height: rows of the grid.
        width: columns of the grid.
        dim: channels of a token.
        kind: "sinusoidal" (fixed, `sinusoidal_encoding_2d`) or "learned" (a table trained with the
            network, initialized from a normal distribution with std 0.02).
    """

    def __init__(self, height: int, width: int, dim: int, kind: Literal["sinusoidal", "learned"] = "learned"):
        super().__init__()
        if kind not in ("sinusoidal", "learned"):
            raise ValueError(f"PositionalEncoding2d: kind must be 'sinusoidal' or 'learned', got {kind!r}")
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.zeros(1, height * width, dim))
            nn.init.trunc_normal_(self.table, std=0.02)
        else:  # recomputed at construction, so it need not be saved
            self.register_buffer("table", sinusoidal_encoding_2d(height, width, dim)[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, H*W, D] -> [N, H*W, D]
        return x + self.table


class RelativePositionBias(nn.Module):
    """A learned bias per head for each offset between two tokens of a `side x side` group (Swin, TransGAN),
    or of a `height x width` group when `side` is a pair (non-square maps).

    Tokens (y1, x1) and (y2, x2) of a row-major group get the bias `table[(y1 - y2 + h - 1) * (2 w - 1)
    + (x1 - x2 + w - 1), head]`, added to their attention logit. The table holds (2 h - 1)(2 w - 1) entries
    per head, initialized from a truncated normal with std 0.02 (as TransGAN's).

    Args:
        side: side of the square token group (a window, or the whole map for global attention), or its
            (height, width).
        num_heads: attention heads; each learns its own table.
    """

    def __init__(self, side: int | tuple[int, int], num_heads: int):
        super().__init__()
        h, w = (side, side) if isinstance(side, int) else (int(side[0]), int(side[1]))
        if h < 1 or w < 1 or num_heads < 1:
            raise ValueError(f"RelativePositionBias: side and num_heads must be >= 1, got {side} and {num_heads}")
        self.side = side
        self.tokens = h * w
        self.table = nn.Parameter(torch.zeros((2 * h - 1) * (2 * w - 1), num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()  # row-major coordinates of the h*w tokens
        index = (ys[:, None] - ys[None, :] + h - 1) * (2 * w - 1) + (xs[:, None] - xs[None, :] + w - 1)
        self.register_buffer("index", index, persistent=False)  # [h*w, h*w], recomputed on construction

    def forward(self) -> torch.Tensor:
        # () -> [num_heads, h*w, h*w]: the bias of every (query, key) pair, per head
        return self.table[self.index].permute(2, 0, 1)
