"""Recording attention weights from whole networks (sagan/visualization/capture.py)."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from sagan.layers.attention import SelfAttention2d
from sagan.models.transgan import TINY
from sagan.visualization.capture import attention_layers, record_attention


def _inputs_of(layer: nn.Module) -> tuple[list, torch.utils.hooks.RemovableHandle]:
    seen = []
    return seen, layer.register_forward_pre_hook(lambda m, args, kwargs: seen.append((args, kwargs)), with_kwargs=True)


def test_records_equal_the_layers_own_weights_and_change_nothing():
    layer = SelfAttention2d(8, num_heads=2)
    with torch.no_grad():
        layer.gamma.fill_(0.5)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), layer).eval()
    x = torch.randn(2, 3, 8, 8)
    seen, hook = _inputs_of(layer)
    with record_attention(net) as records:
        out = net(x)
    hook.remove()
    (record,) = records.values()
    _, expected = layer(*seen[0][0], return_attention=True)
    assert record.name == "1" and record.gamma == 0.5
    assert_close(record.weights, expected)
    assert_close(record.weights.sum(-1), torch.ones_like(record.weights[..., 0]))
    hk, wk = getattr(layer, "key_grid", lambda h, w: (h, w))(8, 8)
    assert record.query_grid == (8, 8) and record.key_grid == (hk, wk)
    assert record.weights.shape == (2, 2, 64, hk * wk)
    assert_close(out, net(x))  # the same output as without recording
    assert "forward" not in vars(layer)  # the layer is as it was


def test_window_attention_of_a_transformer_generator_is_recorded_on_the_full_grid():
    cls, kwargs = TINY["generator-32"]  # windows of 8x8 tokens at 32x32
    generator = cls(**kwargs).eval()
    name = "stages.2.0.attention"
    layer = attention_layers(generator)[name]
    seen, hook = _inputs_of(layer)
    with record_attention(generator, [name]) as records:
        generator(torch.randn(1, 8))
    hook.remove()
    record = records[name]
    assert record.query_grid == (32, 32) and record.gamma is None
    assert_close(record.weights, layer(*seen[0][0], return_attention=True)[1])
    assert_close(record.weights.sum(-1), torch.ones(1, 2, 1024))
    query = 9 * 32 + 10  # (9, 10) lies in the window of rows 8..15, columns 8..15
    rows, cols = torch.arange(1024) // 32, torch.arange(1024) % 32
    outside = ~((rows // 8 == 1) & (cols // 8 == 1))
    assert record.weights[0, :, query, outside].abs().max() == 0


def test_unknown_layer_names_list_the_layers():
    cls, kwargs = TINY["discriminator-32"]
    with pytest.raises(ValueError, match="blocks.0.attention"):
        with record_attention(cls(**kwargs), ["blocks.7.attention"]):
            pass
