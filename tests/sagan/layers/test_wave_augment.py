"""Waveform augmentation in front of the speech discriminator: shifts with silence coming in, bounded gains."""

import pytest
import torch
from torch.testing import assert_close

from sagan.layers.wave_augment import WaveAugment


def test_shift_moves_each_clip_and_lets_silence_in():
    x = torch.arange(1.0, 101.0).repeat(8, 2, 1)  # [8, 2, 100]
    out = WaveAugment(max_shift=0.2, gain_db=0.0)(x)
    shifts = []
    for clip, moved in zip(x, out):  # sample t holds the value t + 1, so the first sample tells the shift
        shift = int(torch.nonzero(moved[0])[0]) if moved[0, 0] == 0 else 1 - int(moved[0, 0])
        shifts.append(shift)
        assert abs(shift) <= 20
        expected = torch.zeros_like(clip)
        if shift >= 0:
            expected[:, shift:] = clip[:, : 100 - shift]
        else:
            expected[:, : 100 + shift] = clip[:, -shift:]
        assert_close(moved, expected, rtol=0, atol=0)  # both channels alike
    assert len(set(shifts)) > 1  # fresh for every clip


def test_gain_stays_within_its_decibels_and_gradients_flow():
    x = torch.ones(500, 1, 16, requires_grad=True)
    out = WaveAugment(max_shift=0.0, gain_db=6.0)(x)
    gains = out[:, 0, 0]
    assert gains.min() >= 10 ** (-6 / 20) - 1e-6 and gains.max() <= 10 ** (6 / 20) + 1e-6
    assert gains.min() < 0.6 and gains.max() > 1.8  # the whole range is used
    out.sum().backward()
    assert_close(x.grad[:, 0, 0], gains.detach())


@pytest.mark.parametrize("kwargs", [dict(max_shift=1.0), dict(max_shift=-0.1), dict(gain_db=-1.0), dict(gain_db=50.0)])
def test_bad_arguments_name_their_range(kwargs):
    with pytest.raises(ValueError, match="must be in"):
        WaveAugment(**kwargs)
