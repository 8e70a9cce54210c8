import pytest
import torch
from torch.testing import assert_close

from sagan.layers.augment import DiffAugment


def _images(n: int = 6, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand(n, c, size, size) * 2 - 1


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")])
def test_keeps_shape_and_range(policy):
    x = _images()
    out = DiffAugment(policy)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= -1 and out.max() <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")])
def test_gradients_reach_the_input_also_twice(policy):
    """G learns through the augmentation, and a gradient penalty differentiates through it again."""
    x = (_images() * 0.5).requires_grad_(True)  # away from the clamp
    weights = torch.randn(x.shape, requires_grad=True)  # stands in for the discriminator's parameters
    (grad,) = torch.autograd.grad((DiffAugment(policy)(x) * weights).sum(), x, create_graph=True)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    grad.square().sum().backward()
    assert torch.isfinite(weights.grad).all() and weights.grad.abs().sum() > 0


def test_translation_is_a_whole_pixel_shift_with_zero_fill():
    torch.manual_seed(1)
    x = _images(n=8, c=2, size=8)
    out = DiffAugment(("translation",), translation_ratio=0.25)(x)  # shifts of up to 2 pixels
    shifts = set()
    for image, moved in zip(x, out):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expected = torch.zeros_like(image)
                src = image[:, max(-dy, 0) : 8 - max(dy, 0), max(-dx, 0) : 8 - max(dx, 0)]
                expected[:, max(dy, 0) : 8 - max(-dy, 0), max(dx, 0) : 8 - max(-dx, 0)] = src
                if torch.equal(moved, expected):
                    matches.append((dy, dx))
        assert len(matches) == 1, matches
        shifts.add(matches[0])
    assert len(shifts) > 1  # each image draws its own shift


def test_cutout_zeroes_one_square_and_keeps_the_rest():
    torch.manual_seed(2)
    x = _images(n=16, c=3, size=8) * 0.5 + 0.6  # no pixel is 0 before the cutout
    out = DiffAugment(("cutout",), cutout_ratio=0.5)(x)
    for image, cut in zip(x, out):
        zero = (cut == 0).all(dim=0)
        rows, cols = zero.any(dim=1).nonzero().squeeze(1), zero.any(dim=0).nonzero().squeeze(1)
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # a rectangle
        assert zero.sum() == len(rows) * len(cols)
        assert_close(cut[:, ~zero], image[:, ~zero], rtol=0, atol=0)
    assert ((out == 0).all(dim=1).sum(dim=(1, 2)) == 16).any()  # some squares lie fully inside


def test_color_jitter_is_per_image():
    torch.manual_seed(3)
    x = _images(n=4, c=3).mul(0.2)
    out = DiffAugment(("color",))(x)
    shifts = (out - x).mean(dim=(1, 2, 3))
    assert shifts.unique().numel() == 4


def test_policy_is_validated():
    with pytest.raises(ValueError, match="blur"):
        DiffAugment(("color", "blur"))
    with pytest.raises(ValueError):
        DiffAugment(translation_ratio=1.5)
