"""Gated convolution (Yu et al., 2019, "Free-Form Image Inpainting with Gated Convolution", DeepFill v2).

A plain convolution treats a pixel of a hole like any other. A gated one learns, per pixel and channel,
how much of its feature to let through: `act(features) * sigmoid(gate)`, both from one convolution with
twice the output channels, so the network can learn to ignore what the holes hold.
"""

import torch
import torch.nn.functional as F
from torch import nn


class GatedConv2d(nn.Module):
    """`leaky_relu(conv_f(x)) * sigmoid(conv_g(x))`, or `leaky_relu(conv(x))` when not gated; "same" padding.

    Args:
        in_channels: channels in.
        out_channels: channels out.
        kernel_size: odd kernel size.
        stride: 1, or 2 to halve height and width (even sizes).
        dilation: dilation of the kernel (context without downsampling).
        gated: learn the sigmoid gate; False gives a plain convolution with the same activation.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
        gated: bool = True,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("dilation", dilation)):
            if value < 1:
                raise ValueError(f"GatedConv2d: {name} must be >= 1, got {value}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"GatedConv2d: kernel_size must be odd and >= 1, got {kernel_size}")
        if stride not in (1, 2):
            raise ValueError(f"GatedConv2d: stride must be 1 or 2, got {stride}")
        self.gated = gated
        padding = dilation * (kernel_size - 1) // 2
        outputs = 2 * out_channels if gated else out_channels
        self.conv = nn.Conv2d(in_channels, outputs, kernel_size, stride, padding, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C_in, H, W] -> [N, C_out, H / stride, W / stride]
        h = self.conv(x)
        if not self.gated:
            return F.leaky_relu(h, 0.2)
        features, gate = h.chunk(2, dim=1)
        return F.leaky_relu(features, 0.2) * torch.sigmoid(gate)
