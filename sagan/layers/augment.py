"""Differentiable augmentation of the discriminator's inputs: DiffAugment (Zhao et al., 2020).

The same random transformations are applied to real and generated images every time the discriminator
sees them (`ImageGAN(augment=DiffAugment())` puts the module in front of D for both losses, the penalty and
validation), so D never sees un-augmented data and G is trained through the transformations. Every
operation is built from arithmetic and indexing: gradients reach the input, also twice (a gradient
penalty through the augmentation), and nothing waits on the host.

Operations, in this order, each with fresh parameters per image:
- color: brightness shift in [-0.5, 0.5), saturation factor in [0, 2) (around the per-pixel channel mean),
  contrast factor in [0.5, 1.5) (around the image mean), then clamping to [-1, 1];
- translation: an integer shift of up to `translation_ratio` of the height and width on each axis,
  uncovered pixels set to 0 (mid-gray);
- cutout: one square of side `cutout_ratio` of the image size, centred anywhere, set to 0.
"""

from typing import Literal

import torch
from torch import nn

from sagan.errors import check_ranges

Operation = Literal["color", "translation", "cutout"]


class DiffAugment(nn.Module):
    """DiffAugment for images in [-1, 1]; applied in training and in evaluation alike.

    Args:
        policy: operations to apply, any of "color", "translation", "cutout" (run in that order).
        translation_ratio: largest shift as a fraction of the image size.
        cutout_ratio: side of the cut-out square as a fraction of the image size.
    """

    def __init__(
        self,
        policy: tuple[Operation, ...] = ("color", "translation", "cutout"),
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ):
        super().__init__()
        unknown = sorted(set(policy) - {"color", "translation", "cutout"})
        if unknown:
            raise ValueError(f"DiffAugment: unknown operations {unknown}; expected color, translation, cutout")
        check_ranges("DiffAugment", translation_ratio=(translation_ratio, "[0, 1)"), cutout_ratio=(cutout_ratio, "[0, 1]"))
        self.policy = tuple(op for op in ("color", "translation", "cutout") if op in policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C, H, W] in [-1, 1] -> [N, C, H, W] in [-1, 1]
        for op in self.policy:
            x = getattr(self, op)(x)
        return x

    @staticmethod
    def _uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """One draw per image from U[low, high), shaped [N, 1, 1, 1] to broadcast over the image."""
        return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (high - low) + low

    def color(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness, saturation and contrast jitter, clamped to [-1, 1]."""
        x = x + self._uniform(x, -0.5, 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * self._uniform(x, 0.0, 2.0) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * self._uniform(x, 0.5, 1.5) + mean
        return x.clamp(-1.0, 1.0)

    def translation(self, x: torch.Tensor) -> torch.Tensor:
        """Shifts each image by whole pixels; pixels shifted in from outside are 0."""
        n, _, h, w = x.shape
        max_dy, max_dx = int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)
        dy = torch.randint(-max_dy, max_dy + 1, (n, 1), device=x.device)
        dx = torch.randint(-max_dx, max_dx + 1, (n, 1), device=x.device)
        # Output pixel (i, j) reads input pixel (i - dy, j - dx); indices outside the image read the zero
        # border that padding adds at index 0 and H + 1 (W + 1).
        rows = (torch.arange(h, device=x.device) - dy + 1).clamp(0, h + 1)  # [N, H]
        cols = (torch.arange(w, device=x.device) - dx + 1).clamp(0, w + 1)  # [N, W]
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        batch = torch.arange(n, device=x.device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)

    def cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Sets one square per image to 0; the square may stick out of the image."""
        n, _, h, w = x.shape
        size_y, size_x = int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5)
        cy = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device)  # square's centre
        cx = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device)
        top, left = cy - size_y // 2, cx - size_x // 2
        rows = torch.arange(h, device=x.device)[None, :, None]
        cols = torch.arange(w, device=x.device)[None, None, :]
        inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)  # [N, H, W]
        return x * (~inside).unsqueeze(1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"policy={self.policy}, translation_ratio={self.translation_ratio}, cutout_ratio={self.cutout_ratio}"
