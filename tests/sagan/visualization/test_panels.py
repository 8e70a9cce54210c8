"""Attention panels: the maps they draw are the layers' softmax rows; sizes; text heat maps; seeds."""

import torch
from torch.testing import assert_close

from sagan.models.sagan import TINY as SAGAN_TINY
from sagan.models.text_transformer import TINY as TEXT_TINY
from sagan.models.transgan import TINY as TRANSGAN_TINY
from sagan.visualization.capture import record_attention
from sagan.visualization.panels import (
    image_gan_panels,
    image_layout,
    query_maps,
    query_points,
    text_gan_panels,
)
from sagan.visualization.render import LINE, PAD, sheet_size


def _net(presets, name, **overrides):
    cls, kwargs = presets[name]
    return cls(**{**kwargs, **overrides}).eval()


def test_query_maps_are_the_query_rows_on_the_key_grid():
    generator = _net(SAGAN_TINY, "generator-32", attn_heads=2, width=8)  # 16 channels at 16x16: 2 q/k channels
    with record_attention(generator) as records:
        generator(torch.randn(1, 8))
    record = records["attention.1"]
    points = torch.tensor([[0.1, 0.8], [0.99, 0.0]])  # (x, y) fractions
    names, maps, cells = query_maps(record, points)
    (hq, wq), (hk, wk), _ = image_layout(record)
    assert cells == [(int(0.8 * hq), int(0.1 * wq)), (0, wq - 1)] and len(names) == 2
    assert maps.shape == (2, 3, hk, wk)  # 2 heads and their mean
    for (r, c), row in zip(cells, maps):
        assert_close(row[:2], record.weights[0, :, r * wq + c].view(2, hk, wk))
        assert_close(row[2], row[:2].mean(0))
        assert_close(row.sum((-1, -2)), torch.ones(3))  # softmax rows


def test_a_vit_discriminator_shows_its_class_token_over_the_patches():
    discriminator = _net(TRANSGAN_TINY, "discriminator-32")  # 8x8 patches behind a class token
    with record_attention(discriminator) as records:
        discriminator(torch.rand(1, 3, 32, 32) * 2 - 1)
    record = records["blocks.0.attention"]
    assert image_layout(record) == ((8, 8), (8, 8), 1)
    names, maps, cells = query_maps(record, query_points(3))
    assert names == ["class token"] and cells is None
    assert_close(maps[0, :2].flatten(1), record.weights[0, :, 0, 1:])
    assert_close(maps[0, :2].sum((-1, -2)) + record.weights[0, :, 0, 0], torch.ones(2))


def test_non_square_panels_keep_the_image_shape():
    """A 32x48 ViT discriminator's 8x12 patches and a TransGAN generator's 8x12 ... 32x48 grids: tiles 96
    high and 144 wide, and a class token read over the patch grid of the image's shape."""
    discriminator = _net(TRANSGAN_TINY, "discriminator-32x48")
    with record_attention(discriminator) as records:
        discriminator(torch.rand(1, 3, 32, 48) * 2 - 1)
    assert image_layout(records["blocks.0.attention"], (32, 48)) == ((8, 12), (8, 12), 1)
    generator = _net(TRANSGAN_TINY, "generator-32x48")
    panels = image_gan_panels(generator, discriminator, torch.randn(1, 8), None, torch.rand(1, 3, 32, 48) * 2 - 1,
                              None, query_points(2))
    assert panels["generator.stages.0.0.attention"].size == sheet_size(2, 4, 144, 96)  # query, 2 heads, mean
    assert panels["discriminator.blocks.0.attention"].size == sheet_size(1, 4, 144, 96)


def test_panels_of_both_networks_have_the_sheet_layout_and_follow_the_seed():
    generator = _net(SAGAN_TINY, "generator-32-cond", attn_heads=2, width=16)  # attention at 8x8 and 32x32
    discriminator = _net(SAGAN_TINY, "discriminator-32-cond")
    z, y, real = torch.randn(1, 8), torch.tensor([2]), torch.rand(1, 1, 32, 32) * 2 - 1
    panels = image_gan_panels(generator, discriminator, z, y, real, y, query_points(3, seed=1))
    assert sorted(panels) == ["discriminator.attention.1", "generator.attention.0", "generator.attention.2"]
    panel = panels["generator.attention.0"]
    # columns: the query, 2 heads, their mean; rows: 3 query points; 96-pixel tiles under 2 text lines
    assert panel.size == (PAD + 4 * (96 + PAD), 2 * LINE + PAD + 3 * (96 + PAD)) == sheet_size(3, 4, 96, 96)
    again = image_gan_panels(generator, discriminator, z, y, real, y, query_points(3, seed=1))
    assert all(again[name].tobytes() == image.tobytes() for name, image in panels.items())
    other = image_gan_panels(generator, discriminator, z, y, real, y, query_points(3, seed=2))
    assert other["generator.attention.0"].tobytes() != panel.tobytes()
    only = image_gan_panels(generator, discriminator, z, y, real, y, layers=["generator.attention.2"])
    assert list(only) == ["generator.attention.2"]


def test_text_panels_are_token_by_token_and_causal_for_the_generator():
    generator = _net(TEXT_TINY, "text-generator")
    discriminator = _net(TEXT_TINY, "text-discriminator")
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with record_attention(generator) as records:
        generator(tokens)
    weights = records["blocks.0.attention"].weights
    assert weights.shape == (1, 2, 6, 6) and weights.triu(1).abs().max() == 0
    assert_close(weights.sum(-1), torch.ones(1, 2, 6))
    panels = text_gan_panels(generator, discriminator, tokens, list("abcdef"))
    assert sorted(panels) == ["discriminator.blocks.0.attention", "generator.blocks.0.attention"]
    assert panels["generator.blocks.0.attention"].size[1] > 6 * 16  # six rows of 16-pixel cells and labels
