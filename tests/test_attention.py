import torch
from torch.testing import assert_close

from sagan.layers.attention import SelfAttention2d


def naive_attention(layer: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V per head, written out with plain matrix products."""
    n, c, h, w = x.shape
    tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
    q, k, v = (tokens @ layer.qkv.weight.t()).chunk(3, dim=-1)
    heads = []
    for i in range(layer.num_heads):
        s = slice(i * layer.head_dim, (i + 1) * layer.head_dim)
        scores = q[..., s] @ k[..., s].transpose(1, 2) / layer.head_dim**0.5
        heads.append(torch.softmax(scores, dim=-1) @ v[..., s])
    out = torch.cat(heads, dim=-1) @ layer.out.weight.t()  # [N, HW, C]
    return x + layer.gamma * out.transpose(1, 2).reshape(n, c, h, w)


def test_matches_naive_reference():
    layer = SelfAttention2d(16, num_heads=2, head_dim=8, use_spectral_norm=False)
    torch.nn.init.constant_(layer.gamma, 0.7)
    x = torch.randn(3, 16, 5, 6)
    assert_close(layer(x), naive_attention(layer, x))


def test_matches_naive_reference_with_spectral_norm():
    layer = SelfAttention2d(16, num_heads=1).eval()
    torch.nn.init.constant_(layer.gamma, -1.3)
    x = torch.randn(2, 16, 4, 4)
    assert_close(layer(x), naive_attention(layer, x))


def test_gamma_zero_is_identity():
    layer = SelfAttention2d(8)
    x = torch.randn(2, 8, 4, 4)
    assert layer.gamma.item() == 0.0
    assert_close(layer(x), x, rtol=0, atol=0)


def test_returned_attention_map():
    layer = SelfAttention2d(16, num_heads=4, head_dim=4, use_spectral_norm=False)
    torch.nn.init.constant_(layer.gamma, 1.0)
    x = torch.randn(2, 16, 3, 5)
    y, weights = layer(x, return_attention=True)
    assert weights.shape == (2, 4, 15, 15)
    assert_close(weights.sum(-1), torch.ones(2, 4, 15))
    assert_close(y, layer(x))
