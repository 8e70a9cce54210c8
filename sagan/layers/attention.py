"""Self-attention over the positions of a feature map (Zhang et al., 2019, "Self-Attention GANs").

Attention runs through `torch.nn.functional.scaled_dot_product_attention`. Query, key and value of a head
share one head size so that PyTorch can pick its fused kernels (flash, memory-efficient). Those kernels
have no double backward: a regularizer that differentiates through the discriminator's input gradient
(gradient penalty, R1) wraps its pass in `math_attention()`, as `sagan.losses` does.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from sagan.layers.norm import spectral_norm


@contextmanager
def math_attention() -> Iterator[None]:
    """Runs attention on the math kernel, the one with a double backward."""
    with sdpa_kernel(SDPBackend.MATH):
        yield


class SelfAttention2d(nn.Module):
    """Multi-head self-attention across the H*W positions of a feature map, added back through a gate.

    Output is `x + gamma * attention(x)`, with the learnable `gamma` starting at 0 so that the block
    begins as the identity and the network learns how much non-local evidence to use.

    Args:
        channels: channels of the input feature map.
        num_heads: attention heads.
        head_dim: size of each head's query, key and value; default `channels // 8` as in the paper.
        use_spectral_norm: spectral norm on the four 1x1 convolutions.
    """

    def __init__(self, channels: int, num_heads: int = 1, head_dim: int | None = None, use_spectral_norm: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim or max(channels // 8, 1)
        inner = self.num_heads * self.head_dim
        wrap = spectral_norm if use_spectral_norm else (lambda m: m)
        # Linear maps over tokens are the paper's 1x1 convolutions, laid out so that each head's last
        # dimension is contiguous, as the fused kernels want.
        self.qkv = wrap(nn.Linear(channels, 3 * inner, bias=False))
        self.out = wrap(nn.Linear(inner, channels, bias=False))
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        # x: [N, C, H, W] -> [N, C, H, W] (and attention weights [N, nh, H*W, H*W] if asked)
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        qkv = self.qkv(tokens).view(n, h * w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [N, nh, HW, hs]
        if return_attention:
            weights = torch.softmax(q @ k.transpose(-1, -2) * self.head_dim**-0.5, dim=-1)
            attended = weights @ v
        else:
            attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(n, h * w, self.num_heads * self.head_dim)
        out = self.out(attended).transpose(1, 2).reshape(n, c, h, w)
        y = x + self.gamma * out
        return (y, weights) if return_attention else y
