"""A fixed inverse short-time Fourier transform as a layer: spectrogram frames -> waveform.

Weighted overlap-add (Griffin & Lim, 1984): each frame's inverse real DFT (`torch.fft.irfft`), multiplied
by a Hann window, is added at its place (`F.fold`), and the sum is divided by the sum of the squared
windows there. It has no parameters, is linear and differentiable, and runs in float32 (the FFT has no
bfloat16 kernels). With frame t centered on sample t * hop and `length / hop + 1` frames it equals
`torch.istft(center=True)`; fewer frames (`length / hop`, what a generator with a power-of-two number of
tokens gives) still reconstruct a signal exactly from its STFT, since the division counts only the frames
present.
"""

import torch
import torch.nn.functional as F
from torch import nn


class InverseSTFT(nn.Module):
    """Frames of a one-sided complex spectrum (real and imaginary parts) -> a waveform.

    Args:
        n_fft: window and DFT size.
        hop_length: samples between frame centers; at most n_fft / 2 so that every sample is covered.
        length: samples of the output (frame t is centered on sample t * hop_length).
    """

    def __init__(self, n_fft: int, hop_length: int, length: int):
        super().__init__()
        if n_fft < 2 or not 1 <= hop_length <= n_fft // 2:
            raise ValueError(f"InverseSTFT: hop_length must be in [1, n_fft / 2] and n_fft >= 2, got {hop_length}, {n_fft}")
        if length < 1:
            raise ValueError(f"InverseSTFT: length must be >= 1, got {length}")
        self.n_fft, self.hop_length, self.length = n_fft, hop_length, length
        self.bins = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, n_fft, T] -> [N, n_fft + hop * (T - 1)]: frame t added at sample t * hop."""
        total = self.n_fft + self.hop_length * (frames.shape[-1] - 1)
        return F.fold(frames, (1, total), (1, self.n_fft), stride=(1, self.hop_length)).flatten(1)

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        # real, imag: [N, n_fft // 2 + 1, T] -> [N, 1, length] (computed in float32)
        count = real.shape[-1]
        start = self.n_fft // 2
        if start + self.length > self.n_fft + self.hop_length * (count - 1):
            raise ValueError(f"InverseSTFT: {count} frames do not cover {self.length} samples at hop {self.hop_length}")
        spectrum = torch.complex(real.float(), imag.float()).transpose(1, 2)  # [N, T, bins]
        frames = torch.fft.irfft(spectrum, n=self.n_fft) * self.window  # [N, T, n_fft]
        added = self._overlap_add(frames.transpose(1, 2))[:, start : start + self.length]
        envelope = self._overlap_add(self.window.square()[None, :, None].expand(1, -1, count))[:, start : start + self.length]
        return (added / envelope)[:, None]  # cropped first: the envelope is 0 at the very first sample
