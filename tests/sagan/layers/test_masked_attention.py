"""Attention restricted to known tokens equals naive math on the fused and the math kernels, never NaN."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.testing import assert_close

from sagan.layers.attention import math_attention
from sagan.layers.masked_attention import MaskedAttention, MaskedTransformerBlock, masked_attention


def naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_known: torch.Tensor) -> torch.Tensor:
    """Row by row: softmax of the scaled scores of the known keys, a weighted sum of their values; 0 if none."""
    out = torch.zeros_like(q)
    for b in range(q.shape[0]):
        keys = key_known[b].nonzero().squeeze(1)
        if len(keys) == 0:
            continue
        scores = q[b] @ k[b][:, keys].transpose(-1, -2) / q.shape[-1] ** 0.5  # [nh, T, K]
        out[b] = torch.softmax(scores, dim=-1) @ v[b][:, keys]
    return out


def _inputs(seed: int = 0, b: int = 4, t: int = 12):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, 2, t, 8, generator=g, dtype=torch.float64) for _ in range(3))
    known = torch.rand(b, t, generator=g) < 0.5
    known[0] = True  # nothing in the hole
    known[1] = False  # everything in the hole: no known key for any row
    known[2, :] = False
    known[2, 3] = True  # one known key
    return q, k, v, known


@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH], ids=["fused", "math"])
def test_matches_naive_math_and_never_nan(backend):
    q, k, v, known = _inputs()
    q32, k32, v32 = (x.float().requires_grad_(True) for x in (q, k, v))
    with sdpa_kernel(backend):
        out = masked_attention(q32, k32, v32, known)
    assert_close(out.double(), naive(q, k, v, known), rtol=1e-5, atol=1e-5)
    assert torch.equal(out[1], torch.zeros_like(out[1]))  # the all-hole sample reads nothing
    assert_close(out[2], v32[2][:, 3:4].expand_as(out[2]))  # the only known key's value, everywhere
    out.square().sum().backward()
    for x in (q32, k32, v32):
        assert torch.isfinite(x.grad).all()
        assert torch.equal(x.grad[1], torch.zeros_like(x.grad[1]))


def test_first_and_double_backward_on_the_math_kernel_match_naive_math():
    q, k, v, known = _inputs(1)
    grads = []
    for attention in (masked_attention, naive):
        leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
        with math_attention():
            out = attention(*leaves, known)
            (dq,) = torch.autograd.grad(out.sin().sum(), leaves[0], create_graph=True)
        dq.square().sum().backward()  # the double backward, as a gradient penalty does
        grads.append([dq.detach()] + [x.grad for x in leaves])
    assert_close(grads[0], grads[1])
    assert all(torch.isfinite(g).all() for g in grads[0])


def test_hole_tokens_read_only_known_tokens():
    torch.manual_seed(0)
    attention = MaskedAttention(dim=8, num_heads=2)
    x = torch.randn(1, 16, 8)
    known = torch.ones(1, 16, dtype=torch.bool)
    known[0, 5:9] = False
    out, known_after = attention(x, known, (4, 4))
    changed = x.clone()
    changed[0, 6:9] = torch.randn(3, 8) * 10  # whatever is in the hole: only those tokens' own outputs change
    rows = [i for i in range(16) if i not in (6, 7, 8)]
    assert_close(attention(changed, known, (4, 4))[0][:, rows], out[:, rows])
    assert known_after.all()  # global attention: every token had a known key
    weights = attention.weights(x, known, (4, 4))
    assert_close(weights.sum(-1), torch.ones(1, 16))
    assert torch.equal(weights[0, :, 5:9], torch.zeros(16, 4))


def test_windows_keep_an_all_hole_window_unknown_and_finite():
    torch.manual_seed(0)
    block = MaskedTransformerBlock(dim=8, num_heads=2, window_size=2)
    x = torch.randn(2, 16, 8, requires_grad=True)
    known = torch.ones(2, 16, dtype=torch.bool)
    known[0, [0, 1, 4, 5]] = False  # the top-left 2x2 window of a 4x4 grid lies in the hole
    known[0, 10] = False  # one hole token in a window that has known ones
    out, known_after = block(x, known, (4, 4))
    expected = torch.ones(2, 16, dtype=torch.bool)
    expected[0, [0, 1, 4, 5]] = False
    assert torch.equal(known_after, expected)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="does not divide"):
        block(x, known, (1, 16))


@pytest.mark.parametrize("kwargs", [dict(dim=6, num_heads=4), dict(dim=8, window_size=-1)])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MaskedAttention(**kwargs)
