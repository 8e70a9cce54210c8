"""Synthetic damage: determinism, and each damage changes an image the way it should."""

import pytest
import torch
from torch.testing import assert_close

from datamodules.repair.degrade import PRESETS, Degradation


def _damage(preset: str, image: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return Degradation(preset)(image, torch.Generator().manual_seed(seed))


def _smooth(c: int = 3, h: int = 32, w: int = 40) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([0.6 * x, 0.6 * y, 0.3 * x * y][:c])


def _tv(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_damage_is_seeded_and_keeps_shape_and_range(preset):
    image = torch.rand(3, 24, 36) * 2 - 1
    damaged, damage = _damage(preset, image)
    assert damaged.shape == image.shape and damage.shape == (1, 24, 36)
    assert damaged.min() >= -1 and damaged.max() <= 1 and set(damage.unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(1)  # the global generator plays no part
    again = _damage(preset, image)
    assert_close(again[0], damaged, rtol=0, atol=0) and assert_close(again[1], damage, rtol=0, atol=0)
    assert not torch.equal(_damage(preset, image, seed=1)[0], damaged)
    assert not torch.equal(damaged, image)


def test_blur_removes_detail_and_keeps_flat_images():
    noise = torch.rand(1, 32, 32) * 2 - 1
    blurred, damage = _damage("blur", noise)
    assert _tv(blurred) < 0.6 * _tv(noise) and not damage.any()
    flat = torch.full((3, 20, 30), 0.25)
    assert_close(_damage("blur", flat)[0], flat, rtol=0, atol=1e-6)


def test_gaussian_noise_is_zero_mean_with_the_drawn_spread():
    gray = torch.zeros(3, 64, 64)
    residual = (_damage("noise", gray)[0] - gray) / 2  # in [0, 1] units
    assert abs(float(residual.mean())) < 0.01
    assert 0.02 * 0.95 < residual.std() < 0.10 * 1.05


def test_speckle_scales_with_intensity():
    image = torch.cat([torch.full((1, 16, 32), -1.0), torch.full((1, 16, 32), 0.6)], dim=1)  # black | bright
    damaged = _damage("speckle", image)[0]
    assert torch.equal(damaged[:, :16], image[:, :16])  # x + x * n is x where x is 0
    assert (damaged[:, 16:] - image[:, 16:]).abs().mean() > 0.01


def test_salt_and_pepper_sets_the_mapped_pixels_to_white_or_black():
    image = _smooth()
    damaged, damage = _damage("salt_pepper", image)
    changed = (damaged != image).any(0, keepdim=True)
    assert torch.equal(changed, damage.bool())  # the smooth image has no pure white or black pixel
    assert set(damaged[:, damage[0].bool()].unique().tolist()) == {-1.0, 1.0}
    assert 0.005 < damage.mean() < 0.06


def test_lowres_loses_fine_detail_and_keeps_flat_images():
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 1.6 - 0.8
    damaged = _damage("lowres", checker[None])[0]
    assert damaged.std() < 0.2 * checker.std()  # the finest pattern cannot survive a 2-4x downscale
    flat = torch.full((1, 17, 23), -0.5)
    assert_close(_damage("lowres", flat)[0], flat, rtol=0, atol=1e-6)


def test_jpeg_quantizes_to_8_bits_and_keeps_smooth_images_close():
    image = _smooth()
    damaged = _damage("jpeg", image)[0]
    levels = (damaged + 1) / 2 * 255
    assert_close(levels, levels.round(), rtol=0, atol=1e-4)
    assert 0 < (damaged - image).abs().mean() < 0.05
    noise = torch.rand(3, 32, 40) * 2 - 1
    assert (_damage("jpeg", noise)[0] - noise).abs().mean() > 0.1  # detail is what JPEG throws away


def test_scratches_paint_flat_strokes_recorded_in_the_map():
    image = _smooth(h=48, w=48)
    damaged, damage = _damage("scratches", image)
    hit = damage[0].bool()
    assert hit.any() and torch.equal(damaged[:, ~hit], image[:, ~hit])
    assert damaged[:, hit].unique().numel() == 1  # one flat tone


def test_old_photo_always_damages_and_varies_its_steps():
    image = _smooth(c=1)
    outcomes = [_damage("old_photo", image, seed) for seed in range(12)]
    assert all(not torch.equal(damaged, image) for damaged, _ in outcomes)
    with_map = sum(bool(damage.any()) for _, damage in outcomes)
    assert 0 < with_map < 12  # scratches or salt-and-pepper in some images, not all


def test_custom_probabilities_and_bad_arguments():
    image = _smooth()
    damaged, damage = Degradation(probabilities={"blur": 0.0, "scratches": 1.0})(image, torch.Generator())
    assert damage.any()
    with pytest.raises(ValueError, match="preset"):
        Degradation("sepia")
    with pytest.raises(ValueError, match="unknown step"):
        Degradation(probabilities={"sepia": 1.0})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Degradation(probabilities={"blur": 1.5})
    with pytest.raises(ValueError, match="above 0"):
        Degradation(probabilities={"blur": 0.0})
