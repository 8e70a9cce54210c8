"""The fixed inverse STFT layer against torch.istft, and exact reconstruction from a signal's STFT."""

import pytest
import torch
from torch.testing import assert_close

from sagan.layers.stft import InverseSTFT


def test_equals_torch_istft_with_one_frame_per_hop_plus_one():
    spectrum = torch.randn(2, 33, 17, dtype=torch.complex64)  # n_fft 64: 33 bins; 16 hops of 16 + 1 frames
    window = torch.hann_window(64)
    expected = torch.istft(spectrum, 64, 16, window=window, center=True, length=256)
    assert_close(InverseSTFT(64, 16, 256)(spectrum.real, spectrum.imag)[:, 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frames", [16, 17], ids=["length/hop frames", "torch.stft's frames"])
def test_reconstructs_a_signal_from_its_stft(frames):
    x = torch.randn(3, 256)
    spectrum = torch.stft(x, 64, 16, window=torch.hann_window(64), center=True, return_complex=True)[..., :frames]
    y = InverseSTFT(64, 16, 256)(spectrum.real, spectrum.imag)
    assert y.shape == (3, 1, 256)
    assert_close(y[:, 0], x, rtol=1e-5, atol=1e-5)


def test_gradients_are_finite_and_reach_every_frame():
    real = torch.randn(1, 9, 8, requires_grad=True)
    imag = torch.randn(1, 9, 8, requires_grad=True)
    InverseSTFT(16, 4, 32)(real, imag).square().sum().backward()
    assert torch.isfinite(real.grad).all() and (real.grad.abs().sum(1) > 0).all()


def test_rejects_frames_that_do_not_cover_the_clip_and_bad_sizes():
    with pytest.raises(ValueError, match="do not cover"):
        InverseSTFT(64, 16, 256)(torch.zeros(1, 33, 14), torch.zeros(1, 33, 14))
    with pytest.raises(ValueError, match="hop_length"):
        InverseSTFT(64, 33, 256)
