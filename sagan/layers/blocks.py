"""Residual up- and down-sampling blocks of SAGAN/BigGAN, every convolution spectrally normalized."""

import torch
import torch.nn.functional as F
from torch import nn

from sagan.layers.norm import ConditionalBatchNorm2d, GroupNorm2d, spectral_norm


def sn_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """A spectrally normalized convolution that keeps the spatial size."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


def check_norm(who: str, norm: str, num_classes: int) -> None:
    """A generator's `norm` option: "batch", or "group" when unconditional; else a one-line ValueError."""
    if norm not in ("batch", "group") or (norm == "group" and num_classes):
        raise ValueError(f"{who}: norm must be 'batch', or 'group' without classes, got {norm!r} with {num_classes} classes")


class GeneratorBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution: BN-ReLU-up-conv-BN-ReLU-conv + up-conv1x1.

    Args:
        in_channels: channels in.
        out_channels: channels out.
        num_classes: classes for the conditional batch norms (0: unconditional batch norm).
        norm: "batch" (SAGAN's) or "group" (`GroupNorm2d`, per-sample statistics; unconditional only).
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0, norm: str = "batch"):
        super().__init__()
        check_norm("GeneratorBlock", norm, num_classes)
        make = (lambda c: ConditionalBatchNorm2d(c, num_classes)) if norm == "batch" else GroupNorm2d
        self.norm1 = make(in_channels)
        self.conv1 = sn_conv(in_channels, out_channels, 3)
        self.norm2 = make(out_channels)
        self.conv2 = sn_conv(out_channels, out_channels, 3)
        self.shortcut = sn_conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, C_in, H, W], y: [N] or None -> [N, C_out, 2H, 2W]
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """Residual block of the discriminator, optionally halving the resolution by average pooling.

    Args:
        in_channels: channels in.
        out_channels: channels out.
        downsample: halve height and width.
        first: the block that sees the image: no ReLU before its first convolution, and its shortcut
            pools before the 1x1 convolution (the "optimized" block of Miyato et al.).
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True, first: bool = False):
        super().__init__()
        self.downsample = downsample
        self.first = first
        self.conv1 = sn_conv(in_channels, out_channels, 3)
        self.conv2 = sn_conv(out_channels, out_channels, 3)
        self.shortcut = sn_conv(in_channels, out_channels, 1) if (in_channels != out_channels or downsample) else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C_in, H, W] -> [N, C_out, H/2, W/2] (or H, W without downsampling)
        h = x if self.first else F.relu(x)
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        if self.shortcut is None:
            return h + x
        skip = self.shortcut(self._pool(x)) if self.first else self._pool(self.shortcut(x))
        return h + skip
