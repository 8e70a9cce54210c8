"""Truncation and interpolation of noise and classes (sagan/latent.py)."""

import math

import pytest
import torch
from torch.testing import assert_close

from sagan.latent import class_weights, lerp, noise, path, seed_noise, slerp, truncate


def test_truncation_redraws_only_the_entries_beyond_the_threshold():
    plain = noise(200, 16, None, torch.Generator().manual_seed(3))
    truncated = noise(200, 16, 0.5, torch.Generator().manual_seed(3))
    inside = plain.abs() <= 0.5
    assert truncated.abs().max() <= 0.5
    assert_close(truncated[inside], plain[inside])  # entries within the threshold are kept
    assert (truncated[~inside] != plain[~inside]).all()
    assert_close(truncated, noise(200, 16, 0.5, torch.Generator().manual_seed(3)))  # seeded
    # redrawn entries follow N(0, 1) restricted to [-0.5, 0.5]: its variance is 1 - 2 t phi(t) / (2 Phi(t) - 1)
    t = 0.5
    phi, big_phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(t / math.sqrt(2)))
    variance = 1 - 2 * t * phi / (2 * big_phi - 1)
    assert abs(truncated.var().item() - variance) < 0.01  # 3,200 samples: standard error ~ 0.001
    with pytest.raises(ValueError, match="threshold"):
        truncate(plain, 0.0)


def test_seed_noise_is_the_first_row_of_that_seed():
    assert_close(seed_noise(7, 5), torch.randn(1, 5, generator=torch.Generator().manual_seed(7))[0])


def test_slerp_follows_the_great_circle_and_lerp_the_chord():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    t = torch.tensor([0.0, 1 / 3, 0.5, 1.0])
    angles = torch.tensor([0.0, math.pi / 6, math.pi / 4, math.pi / 2])
    assert_close(slerp(a, b, t), 3 * torch.stack([angles.cos(), angles.sin()], dim=1))
    assert_close(lerp(a, b, t), torch.stack([3 * (1 - t), 3 * t], dim=1))


def test_a_path_visits_every_point_in_order():
    points = torch.randn(3, 6, dtype=torch.float64)
    for mode in ("slerp", "lerp"):
        frames = path(points, 4, mode)
        assert frames.shape == (9, 6)
        assert_close(frames[[0, 4, 8]], points)
    with pytest.raises(ValueError, match="steps"):
        path(points, 0)


def test_class_weights_are_one_hot_and_checked():
    assert_close(class_weights([2, 0], 3), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    blend = path(class_weights([1, 2], 3), 2, "lerp")
    assert_close(blend[1], torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="0..2"):
        class_weights([3], 3)


def test_truncation_too_small_to_reach_by_redrawing_still_returns_within_it():
    import signal

    def too_long(*_):
        raise TimeoutError("truncate did not return")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(120)
    try:
        z = noise(4, 16, 1e-6, torch.Generator().manual_seed(0))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert z.abs().max() <= 1e-6 and z.abs().max() > 0 and torch.isfinite(z).all()


def test_noise_in_chunks_is_the_noise_of_one_draw_up_to_a_chunk():
    from sagan.latent import noise_chunks

    whole = noise(5, 8, 0.5, torch.Generator().manual_seed(3))
    (chunk,) = noise_chunks(5, 8, 0.5, torch.Generator().manual_seed(3), chunk=5)
    assert_close(chunk, whole, rtol=0, atol=0)
    assert [len(c) for c in noise_chunks(7, 8, None, torch.Generator().manual_seed(3), chunk=3)] == [3, 3, 1]
