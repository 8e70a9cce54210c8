"""Transformer layers: attention against naive references, local groups, fused kernels, blocks."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.testing import assert_close

from sagan.layers.transformer import (
    MultiHeadAttention,
    TokenUpsample,
    TransformerBlock,
    explicit_attention,
    grid_merge,
    grid_partition,
    window_merge,
    window_partition,
)


def naive_attention(layer: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Global attention written out per head: dot products or negative squared distances."""
    hs, nh = layer.head_dim, layer.num_heads
    projected = x @ layer.qkv.weight.t() + layer.qkv.bias
    if layer.kind == "dot":
        q, k, v = projected.chunk(3, dim=-1)
    else:
        q, v = projected.chunk(2, dim=-1)
        k = q
    heads = []
    for i in range(nh):
        qs, ks = q[..., i * hs : (i + 1) * hs], k[..., i * hs : (i + 1) * hs]
        if layer.kind == "dot":
            scores = qs @ ks.transpose(1, 2)
        else:
            scores = -(qs[:, :, None, :] - ks[:, None, :, :]).pow(2).sum(-1)
        heads.append(torch.softmax(scores / hs**0.5, dim=-1) @ v[..., i * hs : (i + 1) * hs])
    return torch.cat(heads, dim=-1) @ layer.out.weight.t() + layer.out.bias


def _randomize(layer: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.3)
    return layer


@pytest.mark.parametrize("kind", ["dot", "l2"])
def test_attention_matches_naive_reference(kind):
    layer = _randomize(MultiHeadAttention(12, num_heads=3, kind=kind))
    x = torch.randn(2, 7, 12)
    assert_close(layer(x), naive_attention(layer, x))


def test_l2_attention_is_the_distance_formula():
    """One head, identity projections: the weights are softmax(-||x_i - x_j||^2 / sqrt(d))."""
    layer = MultiHeadAttention(4, num_heads=1, kind="l2")
    with torch.no_grad():
        layer.qkv.weight.copy_(torch.cat([torch.eye(4), torch.eye(4)]))
        layer.qkv.bias.zero_()
        layer.out.weight.copy_(torch.eye(4))
        layer.out.bias.zero_()
    x = torch.randn(3, 6, 4) * 2
    weights = torch.softmax(-torch.cdist(x, x).pow(2) / 2.0, dim=-1)
    assert_close(layer(x), weights @ x)
    # unlike dot-product attention, a token attends most to itself
    assert (weights.argmax(-1) == torch.arange(6)).all()


@pytest.mark.parametrize("mode", ["window", "grid"])
@pytest.mark.parametrize("size", [8, 16])
def test_window_covering_the_map_is_full_attention(mode, size):
    full = _randomize(MultiHeadAttention(8, num_heads=2))
    local = MultiHeadAttention(8, num_heads=2, window_size=size, window_mode=mode)
    local.load_state_dict(full.state_dict())
    x = torch.randn(2, 64, 8)
    assert_close(local(x, (8, 8)), full(x, (8, 8)))


def test_window_attention_attends_within_each_window():
    layer = _randomize(MultiHeadAttention(8, num_heads=2, window_size=2, window_mode="window"))
    full = MultiHeadAttention(8, num_heads=2)
    full.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 6, 8)  # [N, H, W, D]
    out = layer(x.reshape(2, 24, 8), (4, 6)).view(2, 4, 6, 8)
    for r in range(0, 4, 2):
        for c in range(0, 6, 2):
            window = x[:, r : r + 2, c : c + 2].reshape(2, 4, 8)
            assert_close(out[:, r : r + 2, c : c + 2].reshape(2, 4, 8), full(window))


def test_grid_attention_attends_within_each_strided_grid():
    layer = _randomize(MultiHeadAttention(8, num_heads=2, window_size=2, window_mode="grid"))
    full = MultiHeadAttention(8, num_heads=2)
    full.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 6, 8)
    out = layer(x.reshape(2, 24, 8), (4, 6)).view(2, 4, 6, 8)
    for a in range(2):  # a 2 x 2 grid of tokens at strides 2 (rows) and 3 (columns)
        for b in range(3):
            group = x[:, a::2, b::3].reshape(2, 4, 8)
            assert_close(out[:, a::2, b::3].reshape(2, 4, 8), full(group))


@pytest.mark.parametrize(("partition", "merge"), [(window_partition, window_merge), (grid_partition, grid_merge)])
def test_partitions_invert(partition, merge):
    x = torch.randn(3, 8 * 12, 5)
    groups = partition(x, 8, 12, 4)
    assert groups.shape == (3 * 2 * 3, 16, 5)
    assert_close(merge(groups, 8, 12, 4), x, rtol=0, atol=0)


def test_window_size_must_divide_the_grid():
    layer = MultiHeadAttention(8, num_heads=2, window_size=3)
    with pytest.raises(ValueError, match="divide"):
        layer(torch.randn(1, 16, 8), (4, 4))
    with pytest.raises(ValueError, match="hw"):
        layer(torch.randn(1, 16, 8))


@pytest.mark.parametrize(("kind", "window"), [("dot", 0), ("l2", 0), ("dot", 4)])
def test_attention_runs_on_the_fused_kernel_forward_and_backward(kind, window):
    """Only the flash kernel allowed: L2 attention needs no mask (which would rule fused kernels out)."""
    layer = MultiHeadAttention(16, num_heads=2, kind=kind, window_size=window)
    x = torch.randn(2, 64, 16, requires_grad=True)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out = layer(x, (8, 8))
        out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_block_is_pre_norm_residual_and_uses_the_condition():
    block = _randomize(TransformerBlock(8, num_heads=2, mlp_ratio=2.0, cond_dim=3))
    x, cond = torch.randn(2, 5, 8), torch.randn(2, 3)
    h = x + block.attention(block.norm1(x, cond))
    assert_close(block(x, cond), h + block.mlp(block.norm2(h, cond)))
    assert not torch.allclose(block(x, cond), block(x, cond + 1))


@pytest.mark.parametrize("mode", ["pixel_shuffle", "bilinear"])
def test_token_upsample_matches_the_image_operation(mode):
    out_dim = 2 if mode == "pixel_shuffle" else 8
    up = TokenUpsample(8, out_dim, mode)
    assert isinstance(up.proj, torch.nn.Identity)
    grid = torch.randn(2, 8, 3, 4)  # [N, C, H, W]
    tokens = grid.flatten(2).transpose(1, 2)
    if mode == "pixel_shuffle":
        expected = F.pixel_shuffle(grid, 2)
    else:
        expected = F.interpolate(grid, scale_factor=2.0, mode="bilinear", align_corners=False)
    assert_close(up(tokens, (3, 4)), expected.flatten(2).transpose(1, 2))
    assert TokenUpsample(8, 6, mode)(tokens, (3, 4)).shape == (2, 48, 6)


def test_attention_rejects_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, num_heads=4)


# ------------------------------------------------------------- relative positions and noise (TransGAN)
from sagan.layers.position import RelativePositionBias  # noqa: E402


def test_relative_position_bias_indexes_the_offset_table():
    rel = RelativePositionBias(3, num_heads=2)
    with torch.no_grad():
        rel.table.copy_(torch.randn_like(rel.table))
    bias = rel()
    assert bias.shape == (2, 9, 9)
    for i in range(9):
        for j in range(9):
            dy, dx = i // 3 - j // 3, i % 3 - j % 3  # row-major (y, x) of query i and key j
            assert_close(bias[:, i, j], rel.table[(dy + 2) * 5 + (dx + 2)])
    assert rel.table.numel() == 25 * 2


def _naive_biased(layer: MultiHeadAttention, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Dot-product attention per head with an additive logit bias [nh, T, T], written out."""
    hs = layer.head_dim
    q, k, v = (x @ layer.qkv.weight.t()).chunk(3, dim=-1)  # no q/k/v bias
    heads = []
    for i in range(layer.num_heads):
        s = slice(i * hs, (i + 1) * hs)
        heads.append(torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / hs**0.5 + bias[i], dim=-1) @ v[..., s])
    return torch.cat(heads, dim=-1) @ layer.out.weight.t() + layer.out.bias


def test_relative_position_bias_in_global_and_windowed_attention():
    x = torch.randn(2, 16, 8)  # a 4x4 grid
    full = _randomize(MultiHeadAttention(8, num_heads=2, qkv_bias=False, rel_pos=4))
    assert_close(full(x, (4, 4)), _naive_biased(full, x, full.rel_pos()))
    local = _randomize(MultiHeadAttention(8, num_heads=2, qkv_bias=False, window_size=2, rel_pos=2))
    windows = window_partition(x, 4, 4, 2)  # [2 * 4 windows, 4, 8]: one table shared by all windows
    assert_close(local(x, (4, 4)), window_merge(_naive_biased(local, windows, local.rel_pos()), 4, 4, 2))
    with pytest.raises(ValueError, match="relative positions cover"):
        full(torch.randn(2, 9, 8), (3, 3))


def test_relative_position_bias_in_l2_attention():
    layer = _randomize(MultiHeadAttention(8, num_heads=2, kind="l2", rel_pos=2))
    x = torch.randn(3, 4, 8)
    plain = MultiHeadAttention(8, num_heads=2, kind="l2")
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("rel_pos")})
    with torch.no_grad():
        layer.rel_pos.table.zero_()
    assert_close(layer(x, (2, 2)), plain(x))  # a zero table is no bias
    with torch.no_grad():
        layer.rel_pos.table.normal_()
    assert not torch.allclose(layer(x, (2, 2)), plain(x))


def test_noise_injection_starts_silent_and_learns_its_strength():
    layer = _randomize(MultiHeadAttention(8, num_heads=2, noise=True))
    with torch.no_grad():
        layer.noise_strength.zero_()
    x = torch.randn(2, 5, 8)
    assert_close(layer(x), layer(x), rtol=0, atol=0)  # strength 0: deterministic
    with torch.no_grad():
        layer.noise_strength.fill_(0.5)
    torch.manual_seed(1)
    noisy = layer(x)
    torch.manual_seed(1)
    noise = torch.randn(2, 5, 1)  # one value per token, broadcast over its channels
    with torch.no_grad():
        layer.noise_strength.zero_()
    assert_close(noisy, layer(x + 0.5 * noise))
    layer(x).sum().backward()
    assert layer.noise_strength.grad is not None


# ------------------------------------------------------------------------ explicit attention weights
def naive_weights(layer: MultiHeadAttention, x: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
    """[N, nh, L, L] softmax weights written out per head; `group` [L] masks pairs of different groups."""
    hs, nh = layer.head_dim, layer.num_heads
    projected = x @ layer.qkv.weight.t() + layer.qkv.bias
    q, k = (projected.chunk(3, dim=-1)[:2]) if layer.kind == "dot" else (projected.chunk(2, dim=-1)[0],) * 2
    weights = []
    for i in range(nh):
        qs, ks = q[..., i * hs : (i + 1) * hs], k[..., i * hs : (i + 1) * hs]
        if layer.kind == "dot":
            scores = qs @ ks.transpose(1, 2)
        else:
            scores = -(qs[:, :, None, :] - ks[:, None, :, :]).pow(2).sum(-1)
        scores = scores / hs**0.5
        if group is not None:
            scores = scores.masked_fill(group[:, None] != group[None, :], float("-inf"))
        weights.append(torch.softmax(scores, dim=-1))
    return torch.stack(weights, dim=1)


@pytest.mark.parametrize("kind", ["dot", "l2"])
@pytest.mark.parametrize("window_mode", [None, "window", "grid"])
def test_return_attention_gives_the_softmax_weights_on_the_full_grid(kind, window_mode):
    height, width, size = 4, 6, 2
    layer = MultiHeadAttention(8, num_heads=2, kind=kind, window_size=size if window_mode else 0,
                               window_mode=window_mode or "window").eval()
    x = torch.randn(2, height * width, 8)
    out, weights = layer(x, (height, width), return_attention=True)
    rows, cols = torch.arange(height).repeat_interleave(width), torch.arange(width).repeat(height)
    group = {  # which group each grid position belongs to, from its coordinates
        None: None,
        "window": (rows // size) * (width // size) + cols // size,
        "grid": (rows % (height // size)) * (width // size) + cols % (width // size),
    }[window_mode]
    assert_close(weights, naive_weights(layer, x, group))
    assert_close(weights.sum(-1), torch.ones(2, 2, height * width))
    assert_close(out, layer(x, (height, width)))  # the fused path's output


def test_explicit_attention_adds_a_bias_as_the_fused_kernel_does():
    q, k, v = torch.randn(3, 2, 2, 5, 4).unbind(0)
    bias = torch.randn(2, 5, 5)
    out, weights = explicit_attention(q, k, v, bias=bias)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
    assert_close(weights, torch.softmax(q @ k.transpose(-1, -2) / 2 + bias, dim=-1))
