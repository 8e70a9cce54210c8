import math

import pytest
import torch
from torch.testing import assert_close

from sagan.layers.position import (
    PositionalEncoding2d,
    RelativePositionBias,
    sinusoidal_encoding,
    sinusoidal_encoding_2d,
)


def _formula(p: int, channel: int, dim: int) -> float:
    """PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d))."""
    i = channel // 2
    angle = p / 10000 ** (2 * i / dim)
    return math.sin(angle) if channel % 2 == 0 else math.cos(angle)


def test_sinusoidal_encoding_matches_formula():
    dim = 12
    table = sinusoidal_encoding(torch.arange(50), dim)
    expected = torch.tensor([[_formula(p, c, dim) for c in range(dim)] for p in range(50)])
    assert table.shape == (50, dim)
    assert_close(table, expected)


def test_sinusoidal_encoding_2d_rows_then_columns():
    h, w, dim = 3, 5, 16
    table = sinusoidal_encoding_2d(h, w, dim)
    assert table.shape == (h * w, dim)
    for r in range(h):
        for c in range(w):
            expected = [_formula(r, k, dim // 2) for k in range(dim // 2)] + [_formula(c, k, dim // 2) for k in range(dim // 2)]
            assert_close(table[r * w + c], torch.tensor(expected))


def test_sinusoidal_module_adds_the_fixed_table_and_has_no_parameters():
    pe = PositionalEncoding2d(4, 4, 8, kind="sinusoidal")
    x = torch.randn(2, 16, 8)
    assert_close(pe(x), x + sinusoidal_encoding_2d(4, 4, 8))
    assert not list(pe.parameters()) and "table" not in pe.state_dict()


def test_learned_module_is_a_trained_table():
    pe = PositionalEncoding2d(2, 3, 4, kind="learned")
    x = torch.randn(5, 6, 4)
    pe(x).sum().backward()
    assert pe.table.shape == (1, 6, 4)
    assert_close(pe.table.grad, torch.full((1, 6, 4), 5.0))


@pytest.mark.parametrize(("fn", "args"), [(sinusoidal_encoding, (torch.arange(3), 5)), (sinusoidal_encoding_2d, (2, 2, 6))])
def test_rejects_dims_the_formula_cannot_split(fn, args):
    with pytest.raises(ValueError):
        fn(*args)


def test_relative_bias_over_a_rectangle_depends_on_the_offset_alone():
    bias = RelativePositionBias((2, 3), num_heads=2)
    assert bias.table.shape == (3 * 5, 2) and bias.tokens == 6
    values = bias()  # [2, 6, 6] over the row-major 2x3 group
    cells = [(y, x) for y in range(2) for x in range(3)]
    for i, (y1, x1) in enumerate(cells):
        for j, (y2, x2) in enumerate(cells):
            row = (y1 - y2 + 1) * 5 + (x1 - x2 + 2)
            assert_close(values[:, i, j], bias.table[row])
    assert RelativePositionBias(3, 1).table.shape == RelativePositionBias((3, 3), 1).table.shape == (25, 1)
