"""Hole masks: determinism, polarity and each recipe's hole-ratio range."""

import pytest
import torch
from torch.testing import assert_close

from datamodules.repair.masks import KINDS, LARGE, SMALL, MaskGenerator, fixed_mask, hole_ratio

# The ranges the module docstring documents (measured over 300 draws at four sizes), with a little slack.
RANGES = {
    "strokes": (0.01, 0.6),
    "lama_thin": (0.005, 0.5),
    "lama_medium": (0.0, 0.5),
    "lama_thick": (0.0, 0.5),
    "boxes": (0.005, 0.5),
    "scratches": (0.0, 0.15),
    "mixed": (0.0, 0.6),
}


def _masks(kind: str, h: int, w: int, n: int, seed: int = 0, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    masks = MaskGenerator(kind, **kwargs)
    return torch.stack([masks(h, w, generator) for _ in range(n)])


@pytest.mark.parametrize("kind", KINDS)
def test_masks_are_binary_holes_of_the_asked_size_and_deterministic(kind):
    a, b = _masks(kind, 24, 40, 3), _masks(kind, 24, 40, 3)
    assert a.shape == (3, 1, 24, 40) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert_close(a, b, rtol=0, atol=0)  # same seed, same masks
    assert not torch.equal(a, _masks(kind, 24, 40, 3, seed=1))
    assert not torch.equal(a[0], a[1])  # successive draws differ
    torch.manual_seed(123)  # the global generator plays no part
    assert_close(_masks(kind, 24, 40, 3), a, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [(48, 48), (40, 72)])
def test_each_recipe_keeps_its_hole_ratio_range(kind, size):
    ratios = hole_ratio(_masks(kind, *size, 40))
    low, high = RANGES[kind]
    assert ratios.min() > low and ratios.max() <= high, (ratios.min(), ratios.max())


def test_recipes_differ_as_published():
    strokes, thin, thick = (hole_ratio(_masks(k, 64, 64, 40)) for k in ("strokes", "lama_thin", "lama_thick"))
    scratches = hole_ratio(_masks("scratches", 64, 64, 40))
    assert 0.1 < strokes.mean() < 0.3 and strokes.max() > 0.3  # DeepFill strokes reach large holes
    assert scratches.max() < 0.08  # thin lines
    assert 0.2 < thin.mean() < 0.4 and 0.2 < thick.mean() < 0.4


def test_lama_boxes_are_rectangles_inside_the_margin():
    from datamodules.repair.masks import _Draws, lama_boxes

    rng = _Draws(torch.Generator().manual_seed(0))
    for _ in range(10):  # one box at a time: the mask is its filled bounding box, 10 px (at 256) from the border
        m = torch.from_numpy(lama_boxes(256, 256, rng, boxes=(1, 1), box_size=(30, 150), margin=10))
        rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
        assert m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert rows.min() >= 10 and cols.min() >= 10 and rows.max() < 246 and cols.max() < 246
        assert 30 <= len(rows) <= 150 and 30 <= len(cols) <= 150


def test_stroke_width_scales_with_the_image():
    small, large = hole_ratio(_masks("strokes", 64, 64, 30)), hole_ratio(_masks("strokes", 256, 256, 30))
    assert_close(small.mean(), large.mean(), rtol=0.15, atol=0)  # the same recipe at 4x the side


def test_small_and_large_buckets():
    small = hole_ratio(_masks("mixed", 32, 48, 30, hole_range=SMALL))
    large = hole_ratio(_masks("mixed", 32, 48, 30, hole_range=LARGE))
    assert small.min() > 0 and small.max() <= 0.3
    assert large.min() > 0.3 and large.max() <= 0.6
    boxes = hole_ratio(_masks("boxes", 32, 32, 10, hole_range=(0.2, 0.3)))  # any kind takes a range
    assert boxes.min() > 0.2 and boxes.max() <= 0.3


def test_fixed_masks_depend_on_seed_and_index_only():
    torch.manual_seed(5)
    masks = [fixed_mask(i, 32, 32) for i in range(6)]
    torch.manual_seed(6)
    assert all(torch.equal(m, fixed_mask(i, 32, 32)) for i, m in enumerate(masks))
    ratios = [float(hole_ratio(m)) for m in masks]
    assert all(0 < r <= 0.3 for r in ratios[0::2]) and all(0.3 < r <= 0.6 for r in ratios[1::2])
    assert not torch.equal(fixed_mask(0, 32, 32, seed=1), masks[0])


def test_impossible_range_and_bad_arguments():
    with pytest.raises(RuntimeError, match="scratches"):
        MaskGenerator("scratches", hole_range=(0.55, 0.6), max_tries=3)(32, 32, torch.Generator())
    with pytest.raises(ValueError, match="kind"):
        MaskGenerator("circles")
    with pytest.raises(ValueError, match="hole_range"):
        MaskGenerator("boxes", hole_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="max_tries"):
        MaskGenerator("boxes", max_tries=0)
