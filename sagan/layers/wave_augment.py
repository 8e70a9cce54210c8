"""Differentiable augmentation of waveforms in front of the discriminator: DiffAugment for sound.

With 1,670 training clips a discriminator learns them by heart within a thousand steps and then tells
every generated clip apart, so the generator stops learning. As DiffAugment does for images
(`sagan.layers.augment`), the same random transformations are applied to real and generated clips every
time the discriminator sees them (`SpeechGAN(augment=WaveAugment())`), and the generator is trained
through them:

- shift: every clip moves by a whole number of samples, up to `max_shift` of its length either way,
  with silence coming in (speech may start anywhere in a clip, so this changes nothing real about it);
- gain: every clip is scaled by a factor drawn log-uniformly within +-`gain_db` decibels.
"""

import torch
from torch import nn


class WaveAugment(nn.Module):
    """Random shift and gain of waveforms `[N, C, L]`, fresh for every clip and every call.

    Args:
        max_shift: largest shift as a fraction of the clip length (0: no shift).
        gain_db: largest gain change in decibels, up or down (0: none).
    """

    def __init__(self, max_shift: float = 0.125, gain_db: float = 6.0):
        super().__init__()
        if not 0.0 <= max_shift < 1.0:
            raise ValueError(f"WaveAugment: max_shift must be in [0, 1), got {max_shift}")
        if not 0.0 <= gain_db <= 40.0:
            raise ValueError(f"WaveAugment: gain_db must be in [0, 40], got {gain_db}")
        self.max_shift, self.gain_db = max_shift, gain_db

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C, L] -> [N, C, L]
        n, channels, length = x.shape
        if self.gain_db:
            db = (torch.rand(n, 1, 1, device=x.device) * 2 - 1) * self.gain_db
            x = x * torch.pow(10.0, db / 20).to(x.dtype)
        limit = int(self.max_shift * length)
        if limit:
            shift = torch.randint(-limit, limit + 1, (n, 1, 1), device=x.device)
            source = torch.arange(length, device=x.device) - shift  # out[t] = x[t - shift]
            inside = (source >= 0) & (source < length)
            x = x.gather(2, source.clamp(0, length - 1).expand(n, channels, length)) * inside
        return x

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}, gain_db={self.gain_db}"
