"""Transformer blocks for sequences: attention against a naive reference, causality, the key/value cache."""

import math

import pytest
import torch
from torch.testing import assert_close

from sagan.layers.causal import KVCache, SequenceSelfAttention, TransformerBlock


def _naive_attention(layer: SequenceSelfAttention, x: torch.Tensor) -> torch.Tensor:
    n, t, c = x.shape
    h = layer.num_heads
    q, k, v = layer.qkv(x).split(c, dim=-1)
    q, k, v = (z.view(n, t, h, c // h).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(c // h)
    if layer.causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return layer.out(y.transpose(1, 2).reshape(n, t, c))


@pytest.mark.parametrize("causal", [True, False])
def test_attention_equals_naive_reference(causal):
    layer = SequenceSelfAttention(dim=12, num_heads=3, causal=causal)
    x = torch.randn(2, 7, 12)
    assert_close(layer(x), _naive_attention(layer, x))


def test_causal_block_hides_the_future():
    block = TransformerBlock(dim=8, num_heads=2, causal=True)
    x = torch.randn(2, 6, 8)
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 2, 8)  # change positions 4 and 5
    a, b = block(x), block(changed)
    assert_close(a[:, :4], b[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_bidirectional_block_sees_the_whole_sequence():
    block = TransformerBlock(dim=8, num_heads=2, causal=False)
    x = torch.randn(2, 6, 8)
    changed = x.clone()
    changed[:, 5] = torch.randn(2, 8)
    assert not torch.allclose(block(x)[:, 0], block(changed)[:, 0])


def test_cached_steps_equal_the_full_causal_pass():
    blocks = [TransformerBlock(dim=8, num_heads=2, causal=True) for _ in range(2)]
    x = torch.randn(3, 5, 8)
    full = x
    for block in blocks:
        full = block(full)
    cache, steps = KVCache(), []
    for t in range(5):
        h = x[:, t : t + 1]
        for block in blocks:
            h = block(h, cache)
        steps.append(h)
        assert len(cache) == t + 1
    assert_close(torch.cat(steps, dim=1), full)


def test_a_cached_prompt_then_single_steps_equal_the_full_causal_pass():
    blocks = [TransformerBlock(dim=8, num_heads=2, causal=True) for _ in range(2)]
    x = torch.randn(2, 6, 8)
    full = x
    for block in blocks:
        full = block(full)
    cache = KVCache()
    h = x[:, :3]  # a 3-position prompt in one call
    for block in blocks:
        h = block(h, cache)
    outputs = [h]
    for t in range(3, 6):
        h = x[:, t : t + 1]
        for block in blocks:
            h = block(h, cache)
        outputs.append(h)
    assert_close(torch.cat(outputs, dim=1), full)


def test_cached_causal_step_takes_one_position():
    layer = SequenceSelfAttention(dim=8, num_heads=2, causal=True)
    cache = KVCache()
    layer(torch.randn(1, 1, 8), cache)
    with pytest.raises(ValueError, match="one position at a time"):
        layer(torch.randn(1, 2, 8), cache)
    with pytest.raises(ValueError, match="divisible"):
        SequenceSelfAttention(dim=10, num_heads=3, causal=True)


@pytest.mark.parametrize("causal", [True, False])
def test_return_attention_gives_the_softmax_weights(causal):
    layer = SequenceSelfAttention(dim=12, num_heads=3, causal=causal).eval()
    x = torch.randn(2, 5, 12)
    y, weights = layer(x, return_attention=True)
    n, t, c = x.shape
    q, k, _ = (z.view(n, t, 3, c // 3).transpose(1, 2) for z in layer.qkv(x).split(c, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(c // 3)
    if causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    assert_close(weights, torch.softmax(scores, dim=-1))
    assert_close(y, layer(x))
    if causal:  # no weight on a later position; a cached step's row is the last row of the full pass
        assert weights.triu(1).abs().max() == 0
        cache = KVCache()
        layer(x[:, :4], cache)
        _, step = layer(x[:, 4:], cache, return_attention=True)
        assert_close(step[:, :, 0], weights[:, :, -1])
