"""The speech Transformer GAN's networks beyond the contract suite: the output path of the generator, the
scales and companding of the discriminator, and the layouts they refuse."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from sagan.models.speech_transformer import MultiScaleWaveDiscriminator, SpeechTransformerGenerator

SMALL = dict(num_samples=512, z_dim=4, n_fft=32, hop_length=16, bottom_frames=16, dims=(8, 8), depths=(1, 0),
             num_heads=2, style_dim=4)


@pytest.mark.parametrize("spectrum", ["complex", "polar"])
def test_generator_output_is_the_inverse_stft_of_its_frames(spectrum):
    g = SpeechTransformerGenerator(**SMALL, spectrum=spectrum).eval()
    frames = {}
    g.to_frames.register_forward_hook(lambda module, args, out: frames.setdefault("out", out))
    x = g(torch.randn(2, 4))
    out = frames["out"].transpose(1, 2).double()  # [N, 2 * bins, 32]
    first, second = out.chunk(2, dim=1)
    spectrum_ = torch.complex(first, second) if spectrum == "complex" else first.exp() * torch.exp(1j * second)
    reference = torch.istft(F.pad(spectrum_, (0, 1)), 32, 16, window=torch.hann_window(32, dtype=torch.float64),
                            center=True, length=512)  # torch.istft wants one frame more; a silent one changes nothing
    # ... except the envelope it divides by near the very end; compare away from it
    assert_close(x[:, 0, :480].double(), torch.tanh(reference[:, :480]), rtol=1e-4, atol=1e-5)


def test_polar_generator_can_be_silent():
    g = SpeechTransformerGenerator(**SMALL, spectrum="polar")
    with torch.no_grad():
        g.to_frames.weight.zero_()
        g.to_frames.bias[: g.istft.bins] = -30.0  # every magnitude e^-30
    assert g(torch.randn(3, 4)).abs().max() < 1e-9


def test_discriminator_logit_is_the_mean_over_scales_of_the_companded_clip():
    d = MultiScaleWaveDiscriminator(num_samples=1024, scales=2, widths=(4, 8), num_heads=2, compand=255.0).eval()
    x = torch.rand(3, 1, 1024) * 2 - 1
    c = torch.sign(x) * torch.log1p(255 * x.abs()) / math.log(256)
    halved = F.avg_pool1d(c, 4, stride=2, padding=1, count_include_pad=False)
    assert_close(d(x), (d.scales[0](c) + d.scales[1](halved)) / 2)
    quiet = torch.zeros(1, 1, 1024)
    quiet[..., ::7] = 0.003  # -50 dB: a tenth of full scale once companded
    assert not torch.allclose(d(quiet), d(torch.zeros(1, 1, 1024)), atol=1e-3)


@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (SpeechTransformerGenerator, dict(SMALL, num_samples=500), "not num_samples=500"),
    (SpeechTransformerGenerator, dict(SMALL, dims=(8, 7)), "divisible by num_heads"),
    (SpeechTransformerGenerator, dict(SMALL, hop_length=20), "hop_length"),
    (SpeechTransformerGenerator, dict(SMALL, spectrum="mel"), "spectrum"),
    (MultiScaleWaveDiscriminator, dict(num_samples=256, scales=3, widths=(4, 8, 8, 8)), "too short"),
    (MultiScaleWaveDiscriminator, dict(compand=-1.0), "compand"),
])
def test_impossible_layouts_are_refused(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)
