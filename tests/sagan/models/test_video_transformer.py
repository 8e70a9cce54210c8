"""The video transformer: divided space-time attention equals naive attention, positions, token layout."""

import math

import pytest
import torch
from torch.testing import assert_close

from sagan.layers.transformer import MultiHeadAttention
from sagan.models.video_transformer import (
    SpaceTimeBlock,
    SpaceTimePositions,
    VideoTransformerDiscriminator,
    VideoTransformerGenerator,
)


def naive_attention(attention: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Multi-head self-attention of one sequence [L, D] written out: softmax of scores, then a weighted sum."""
    heads, size = attention.num_heads, attention.head_dim
    parts = attention.qkv(x).view(len(x), -1, heads, size)  # [L, 2 or 3, heads, size]
    out = torch.zeros(len(x), heads, size)
    for h in range(heads):
        if attention.kind == "dot":
            q, k, v = parts[:, 0, h], parts[:, 1, h], parts[:, 2, h]
            scores = q @ k.T / math.sqrt(size)
        else:  # tied queries and keys, negative squared distances
            q, v = parts[:, 0, h], parts[:, 1, h]
            scores = -torch.cdist(q.double(), q.double()).square().float() / math.sqrt(size)
        out[:, h] = torch.softmax(scores, dim=1) @ v
    return attention.out(out.reshape(len(x), heads * size))


def naive_block(block: SpaceTimeBlock, x: torch.Tensor, thw: tuple[int, int, int]) -> torch.Tensor:
    """The block with every attention group gathered by hand: a place across frames, then a frame's places."""
    n, _, d = x.shape
    frames, height, width = thw
    grid = x.view(n, frames, height * width, d)
    normed = block.norm_time(x).view(n, frames, height * width, d)
    temporal = torch.zeros_like(grid)
    for i in range(n):
        for place in range(height * width):
            temporal[i, :, place] = naive_attention(block.temporal, normed[i, :, place])
    grid = grid + temporal
    normed = block.norm_space(grid.reshape(n, -1, d)).view(n, frames, height * width, d)
    spatial = torch.stack([torch.stack([naive_attention(block.spatial, normed[i, t]) for t in range(frames)])
                           for i in range(n)])
    out = (grid + spatial).reshape(n, -1, d)
    return out + block.mlp(block.norm_mlp(out))


@pytest.mark.parametrize("kind", ["dot", "l2"])
def test_space_time_block_equals_naive_attention(kind):
    torch.manual_seed(0)
    block = SpaceTimeBlock(dim=8, num_heads=2, mlp_ratio=2.0, kind=kind)
    x = torch.randn(2, 3 * 2 * 4, 8)  # 2 clips of 3 frames of 2 x 4 tokens
    with torch.no_grad():
        assert_close(block(x, (3, 2, 4)), naive_block(block, x, (3, 2, 4)), rtol=1e-4, atol=1e-5)


def test_temporal_attention_mixes_a_place_across_frames_only():
    torch.manual_seed(0)
    block = SpaceTimeBlock(dim=8, num_heads=2)
    x = torch.randn(1, 4 * 3 * 3, 8)
    grid = x.view(1, 4, 9, 8)
    with torch.no_grad():
        across_time = block.temporal(block.norm_time(x).view(1, 4, 9, 8).transpose(1, 2).reshape(9, 4, 8))
        changed = grid.clone()
        changed[0, 2, 5] += 1.0  # one token: frame 2, place 5
        after = block.temporal(block.norm_time(changed.view(1, -1, 8)).view(1, 4, 9, 8).transpose(1, 2).reshape(9, 4, 8))
    moved = (after - across_time).abs().sum((1, 2)) > 0  # which places' outputs changed
    assert moved.tolist() == [place == 5 for place in range(9)]


def test_sinusoidal_positions_follow_the_formula():
    positions = SpaceTimePositions(frames=3, height=2, width=2, dim=8, kind="sinusoidal")
    out = positions(torch.zeros(1, 12, 8)).view(3, 4, 8)
    for t in range(3):
        for place, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            expected = []
            for value, dims in ((row, 4), (col, 4)):  # the spatial code: rows in half the channels, columns after
                expected += [f(value / 10000 ** (2 * (i // 2) / dims)) for i, f in zip(range(dims), [math.sin, math.cos] * dims)]
            temporal = [f(t / 10000 ** (2 * (i // 2) / 8)) for i, f in zip(range(8), [math.sin, math.cos] * 8)]
            assert_close(out[t, place], torch.tensor(expected) + torch.tensor(temporal))


def test_generator_tubelets_land_where_their_token_is():
    torch.manual_seed(0)
    g = VideoTransformerGenerator(image_size=8, channels=2, num_frames=4, z_dim=4, bottom_size=2, dims=(4,),
                                  depths=(0,), num_heads=1, style_dim=4, patch_size=4, tubelet=2)
    tokens, values = 2 * 2 * 2, 2 * 4 * 4 * 2  # 2 time steps x 2 x 2 tokens, each 2 frames x 4 x 4 pixels x 2 channels
    code = (torch.arange(tokens)[:, None] * 1000 + torch.arange(values)) / 1e6  # token j, value k -> small, distinct

    class Coded(torch.nn.Module):
        def forward(self, h):
            return code.expand(h.shape[0], -1, -1)

    g.to_pixels = Coded()
    with torch.no_grad():
        decoded = torch.atanh(g(torch.randn(1, 4)))[0] * 1e6  # [T=4, C=2, 8, 8]
    for t in range(4):
        for c in range(2):
            for y in range(8):
                for x in range(8):
                    token = (t // 2) * 4 + (y // 4) * 2 + x // 4  # time-major, then rows, then columns
                    value = (((t % 2) * 4 + y % 4) * 4 + x % 4) * 2 + c  # frame, row, column, channel
                    assert round(decoded[t, c, y, x].item()) == token * 1000 + value


def test_discriminator_sees_the_order_of_frames():
    torch.manual_seed(0)
    d = VideoTransformerDiscriminator(image_size=8, channels=1, num_frames=4, patch_size=4, tubelet=2, dim=8, depth=1,
                                      num_heads=2).eval()
    clip = torch.rand(1, 4, 1, 8, 8) * 2 - 1
    assert not torch.allclose(d(clip), d(clip.flip(1)))  # motion backwards is another clip


@pytest.mark.parametrize(
    "kwargs",
    [dict(image_size=24), dict(num_frames=5, tubelet=2), dict(dims=(64, 30), depths=(1, 1)), dict(patch_size=0),
     dict(window_resolutions=(4,)), dict(channels=0), dict(num_classes=-1), dict(mlp_ratio=0.0)],
)
def test_generator_rejects_impossible_layouts(kwargs):
    with pytest.raises(ValueError):
        VideoTransformerGenerator(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(patch_size=5), dict(tubelet=3), dict(dim=30), dict(depth=-1), dict(channels=0), dict(mlp_ratio=-1.0)]
)
def test_discriminator_rejects_impossible_layouts(kwargs):
    with pytest.raises(ValueError):
        VideoTransformerDiscriminator(**kwargs)
