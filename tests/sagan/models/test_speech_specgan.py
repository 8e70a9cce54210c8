"""The spectrogram speech GAN's networks beyond the contract suite: the level mapping, the Griffin-Lim inverse,
the generator's output path, the discriminator's two views, and the layouts they refuse."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from sagan.models.speech_specgan import GriffinLim, LogSpectrogram, SpecGANGenerator, SpectrogramDiscriminator

SMALL = dict(num_samples=512, global_dim=4, frame_noise_dim=2, n_fft=32, hop_length=16, bottom_frames=16, dims=(8, 8),
             attention_depth=1, conv_depth=1, num_heads=2, style_dim=4, griffin_lim_iters=4)


def test_log_spectrogram_maps_a_full_scale_sine_to_one_and_silence_to_minus_one():
    spec = LogSpectrogram(n_fft=64, hop_length=16, frames=64, floor_db=80.0)
    t = torch.arange(1024, dtype=torch.float64)
    sine = torch.sin(2 * torch.pi * 8 / 64 * t).float()[None, None]  # exactly bin 8
    levels = spec(sine)
    assert levels.shape == (1, 32, 64)
    assert_close(levels[0, 8, 8:56], torch.ones(48), atol=1e-3, rtol=0)  # away from the clip's edges
    assert_close(spec(torch.zeros(1, 1, 1024)), -torch.ones(1, 32, 64))
    half = spec(0.1 * sine)[0, 8, 32]  # -20 dB: 1 - 2 * 20 / 80
    assert_close(half, torch.tensor(0.5), atol=1e-3, rtol=0)
    assert_close(spec.magnitude(levels[0, 8, 32]), torch.tensor(16.0), rtol=1e-3, atol=0)  # n_fft / 4


def test_griffin_lim_recovers_a_clips_magnitudes_and_passes_gradients_to_them():
    torch.manual_seed(0)
    t = torch.arange(2048) / 8000
    chirp = (0.5 * torch.sin(2 * torch.pi * (300 + 400 * t) * t * 8) * torch.hann_window(2048))[None, None]
    spec = LogSpectrogram(64, 16, 128)
    magnitude = F.pad(spec.magnitude(spec(chirp)), (0, 0, 0, 1))
    errors = {}
    for iterations in (0, 32):
        out = GriffinLim(64, 16, 2048, 128, iterations)(magnitude)
        errors[iterations] = (spec(out) - spec(chirp)).abs().mean()
    assert errors[32] < errors[0] / 2
    magnitude.requires_grad_(True)
    GriffinLim(64, 16, 2048, 128, 2)(magnitude).square().sum().backward()
    assert magnitude.grad.abs().sum() > 0
    again = GriffinLim(64, 16, 2048, 128, 2)
    assert torch.equal(again(magnitude.detach()), again(magnitude.detach()))  # a fixed starting phase


def test_generator_output_is_the_inverse_of_its_spectrogram():
    g = SpecGANGenerator(**SMALL).eval()
    z = torch.randn(3, g.z_dim)
    assert g.z_dim == 4 + 16 * 2
    magnitude = F.pad(g.spectrogram.magnitude(g.levels(z)), (0, 0, 0, 1))
    assert_close(g(z), g.inverse(magnitude).clamp(-1, 1))


def test_generator_can_be_silent_and_uses_its_frame_noise():
    g = SpecGANGenerator(**SMALL).eval()
    z = torch.randn(2, g.z_dim)
    moved = z.clone()
    moved[:, 4:] = torch.randn(2, 32)  # other frame noise, the same global noise
    assert not torch.allclose(g(z), g(moved))
    with torch.no_grad():
        g.to_levels.weight.zero_()
        g.to_levels.bias.fill_(-2.0)  # -120 dB in every bin
    assert g(z).abs().max() < 1e-4


def test_discriminator_with_wave_scales_averages_both_views():
    torch.manual_seed(0)
    d = SpectrogramDiscriminator(num_samples=1024, num_classes=2, n_fft=32, hop_length=16, widths=(8, 8), num_heads=2,
                                 wave_scales=1).eval()
    x, y = torch.rand(3, 1, 1024) * 2 - 1, torch.tensor([0, 1, 1])
    wave = d.wave(x, y)
    d.wave = None
    assert_close((d(x, y) + wave) / 2, SpectrogramDiscriminator.forward(d, x, y) / 2 + wave / 2)
    assert not torch.allclose(d(x, y), (d(x, y) + wave) / 2)


@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (SpecGANGenerator, dict(SMALL, num_samples=500), "not num_samples=500"),
    (SpecGANGenerator, dict(SMALL, dims=(7, 8)), "divisible by num_heads"),
    (SpecGANGenerator, dict(SMALL, kernel_size=4), "odd"),
    (SpecGANGenerator, dict(SMALL, hop_length=32, bottom_frames=8, n_fft=32), "at most n_fft"),
    (SpecGANGenerator, dict(SMALL, griffin_lim_iters=-1), "griffin_lim_iters"),
    (SpecGANGenerator, dict(SMALL, floor_db=0.0), "floor_db"),
    (SpectrogramDiscriminator, dict(num_samples=64, hop_length=16, n_fft=32, widths=(8, 8, 8, 8)), "too few"),
    (SpectrogramDiscriminator, dict(widths=(8, 6)), "divisible by num_heads"),
    (SpectrogramDiscriminator, dict(wave_scales=-1), "wave_scales"),
    (SpectrogramDiscriminator, dict(pooling="max"), "pooling"),
])
def test_impossible_layouts_are_refused(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)
