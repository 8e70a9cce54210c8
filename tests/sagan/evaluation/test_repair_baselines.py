"""Classical repair baselines: they run on tiny images of any shape and do what they are for."""

import pytest
import torch
from torch.testing import assert_close

from sagan.evaluation.repair_baselines import INPAINTING, RESTORATION, bilateral, biharmonic, damaged_input, median, zero_fill
from sagan.evaluation.repair_metrics import composite, per_image


def _ramp(c: int = 3, h: int = 20, w: int = 28) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-0.8, 0.8, h), torch.linspace(-0.6, 0.6, w), indexing="ij")
    return torch.stack([x + 0.2 * y + 0.3, y - 0.2, 0.5 * x + 0.4][:c]).unsqueeze(0)


@pytest.mark.parametrize("channels", [1, 3])
def test_inpainting_baselines_beat_holes_left_at_zero_on_a_smooth_image(channels):
    clean = _ramp(channels)
    mask = torch.zeros(1, 1, 20, 28)
    mask[..., 6:13, 9:18] = 1
    damaged = clean * (1 - mask)
    floor = per_image(composite(damaged, zero_fill(damaged, mask), mask), clean, mask)["l1_hole"]
    for name, repair in INPAINTING.items():
        prediction = repair(damaged, mask)
        assert prediction.shape == clean.shape and prediction.dtype == clean.dtype, name
        l1 = per_image(composite(damaged, prediction, mask), clean, mask)["l1_hole"]
        assert l1 < floor or repair is zero_fill, (name, float(l1), float(floor))
    # a linear ramp is harmonic and biharmonic: the biharmonic fill recovers it
    assert_close(biharmonic(damaged, mask), clean, rtol=0, atol=0.01)


def test_restoration_baselines():
    clean = _ramp(1)
    damaged = clean.clone()
    damaged[..., 3::7, 5::9] = 1.0  # isolated white pixels (salt)
    assert torch.equal(damaged_input(damaged), damaged)
    assert (median(damaged) - clean).abs().mean() < 0.3 * (damaged - clean).abs().mean()
    noisy = torch.full((1, 3, 16, 16), 0.2) + 0.05 * torch.randn(1, 3, 16, 16)
    assert bilateral(noisy).std() < 0.5 * noisy.std()  # flat and noisy: smoothed
    for name, repair in RESTORATION.items():
        assert repair(damaged, None).shape == damaged.shape, name
