"""Self-attention over the positions of a feature map (Zhang et al., 2019, "Self-Attention GANs").

Two blocks, both `x + gamma * out(attention(x))` with the learnable gate `gamma` starting at 0:

- `SAGANSelfAttention2d`, the block of the paper's code (brain-research/self-attention-gan,
  `sn_non_local_block_sim`): query and key (theta, phi) with C/8 channels, value (g) with C/2, keys and
  values max-pooled 2x2 (a quarter of the positions), logits without a 1/sqrt(d) temperature, one
  spectral norm per 1x1 convolution, an output convolution C/2 -> C. The default of every SAGAN model.
- `SelfAttention2d`, a compact block: query, key and value of C/8 channels at every position, one
  spectral norm over the stacked q/k/v matrix, softmax(q k^T / sqrt(d)). Its attention logits spread
  far less at initialization (flatter maps); it has fewer parameters.

Attention runs through `torch.nn.functional.scaled_dot_product_attention` with an explicit `scale`, so
PyTorch can pick its fused kernels (flash, memory-efficient). Those want one head size for query, key
and value: the paper's block pads query and key with zeros up to the value's size, which leaves every
dot product unchanged. The fused kernels have no double backward: a regularizer that differentiates
through the discriminator's input gradient (gradient penalty, R1, R2) wraps its pass in
`math_attention()`, as `sagan.losses` does.

Both blocks share one interface: `forward(x, return_attention=True)` also returns the softmax weights
`[N, heads, H*W, Hk*Wk]` (each row sums to 1), and `key_grid(h, w)` gives the key map's shape (Hk, Wk)
for an h x w query map.
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


def _xavier(layer: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(layer.weight)
    return layer


class SelfAttention2d(nn.Module):
    """Compact multi-head self-attention across the H*W positions of a feature map, added back through a gate.

    Query, key and value of a head share one size, so the fused kernels apply as they are; logits are
    scaled by 1/sqrt(head size); one spectral norm covers the stacked q/k/v projection.

    Args:
        channels: channels of the input feature map.
        num_heads: attention heads.
        head_dim: size of each head's query, key and value; default `channels // 8` as in the paper.
        use_spectral_norm: spectral norm on the 1x1 convolutions.
    """

    def __init__(self, channels: int, num_heads: int = 1, head_dim: int | None = None, use_spectral_norm: bool = True):
        super().__init__()
        if channels < 1 or num_heads < 1 or (head_dim is not None and head_dim < 1):
            raise ValueError(f"SelfAttention2d: channels, num_heads and head_dim must be >= 1, got "
                             f"{channels}, {num_heads}, {head_dim}")
        self.num_heads = num_heads
        self.head_dim = head_dim or max(channels // 8, 1)
        inner = self.num_heads * self.head_dim
        wrap = spectral_norm if use_spectral_norm else (lambda m: m)
        # Linear maps over tokens are the paper's 1x1 convolutions, laid out so that each head's last
        # dimension is contiguous, as the fused kernels want.
        self.qkv = wrap(nn.Linear(channels, 3 * inner, bias=False))
        self.out = wrap(nn.Linear(inner, channels, bias=False))
        self.gamma = nn.Parameter(torch.zeros(()))
        self.scale = self.head_dim**-0.5

    def key_grid(self, h: int, w: int) -> tuple[int, int]:
        """Shape of the key map for an h x w query map: every position is a key."""
        return h, w

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: [N, C, H, W] -> q [N, nh, HW, hs], k and v [N, nh, HkWk, hs]."""
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        qkv = self.qkv(tokens).view(n, h * w, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [N, nh, HW, hs]
        return q, k, v

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        # x: [N, C, H, W] -> [N, C, H, W] (and attention weights [N, nh, H*W, Hk*Wk] if asked)
        n, c, h, w = x.shape
        q, k, v = self.project(x)
        if return_attention:  # the weights themselves, in at least fp32 for rows that sum to 1
            dtype = torch.promote_types(q.dtype, torch.float32)
            weights = torch.softmax((q.to(dtype) @ k.to(dtype).transpose(-1, -2)) * self.scale, dim=-1)
            attended = (weights @ v.to(dtype)).to(v.dtype)
        else:
            if q.shape[-1] < v.shape[-1]:  # one head size for the fused kernels: zeros leave q.k unchanged
                pad = v.shape[-1] - q.shape[-1]
                q, k = F.pad(q, (0, pad)), F.pad(k, (0, pad))
            attended = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        attended = attended.transpose(1, 2).reshape(n, h * w, -1)  # [N, HW, nh * hs_v]
        out = self.out(attended).transpose(1, 2).reshape(n, c, h, w)
        y = x + self.gamma * out
        return (y, weights) if return_attention else y


class SAGANSelfAttention2d(SelfAttention2d):
    """The self-attention block of the SAGAN paper's code, with optional heads.

    theta (queries) and phi (keys) are 1x1 convolutions to `channels // 8`, g (values) to
    `channels // 2`; phi and g are max-pooled 2x2 with stride 2 (keys on an (H//2) x (W//2) grid);
    softmax(theta phi^T) without temperature; a 1x1 convolution maps the attended values back to
    `channels`. Each convolution has its own spectral norm and Xavier-uniform initial weights, no bias.
    With several heads, the query/key and value channels are split evenly among them.

    Args:
        channels: channels of the input feature map.
        num_heads: attention heads; must divide `channels // 8` and `channels // 2` (each at least 1).
        use_spectral_norm: spectral norm on the four 1x1 convolutions.
    """

    def __init__(self, channels: int, num_heads: int = 1, use_spectral_norm: bool = True):
        # A SelfAttention2d by interface (forward, gamma, key_grid: what callers look for), with its own layers.
        nn.Module.__init__(self)
        if channels < 1:
            raise ValueError(f"SAGANSelfAttention2d: channels must be >= 1, got {channels}")
        qk, v = max(channels // 8, 1), max(channels // 2, 1)  # at least one channel in tiny test networks
        if num_heads < 1 or qk % num_heads or v % num_heads:
            raise ValueError(f"SAGANSelfAttention2d: num_heads must be >= 1 and divide {qk} and {v}, got {num_heads}")
        self.num_heads, self.qk_dim, self.head_dim = num_heads, qk // num_heads, v // num_heads
        wrap = spectral_norm if use_spectral_norm else (lambda m: m)
        self.theta = wrap(_xavier(nn.Linear(channels, qk, bias=False)))
        self.phi = wrap(_xavier(nn.Linear(channels, qk, bias=False)))
        self.g = wrap(_xavier(nn.Linear(channels, v, bias=False)))
        self.out = wrap(_xavier(nn.Linear(v, channels, bias=False)))
        self.gamma = nn.Parameter(torch.zeros(()))
        self.scale = 1.0

    def key_grid(self, h: int, w: int) -> tuple[int, int]:
        """Shape of the key map for an h x w query map: 2x2 max pooling with stride 2."""
        return h // 2, w // 2

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: [N, C, H, W] -> q [N, nh, HW, hs_qk], k [N, nh, HkWk, hs_qk], v [N, nh, HkWk, hs_v]."""
        n, c, h, w = x.shape
        hk, wk = self.key_grid(h, w)
        if hk < 1 or wk < 1:
            raise ValueError(f"SAGANSelfAttention2d: a {h}x{w} map is too small for 2x2 pooled keys")
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        # One matrix product for the three projections, each weight normalized by its own spectral norm.
        weight = torch.cat([self.theta.weight, self.phi.weight, self.g.weight])
        qkv = F.linear(tokens, weight)  # [N, HW, 2 qk + v]
        qk_channels = self.num_heads * self.qk_dim
        q = qkv[..., :qk_channels]
        kv = qkv[..., qk_channels:].view(n, h, w, -1)[:, : 2 * hk, : 2 * wk]  # pooling drops an odd last row
        kv = kv.reshape(n, hk, 2, wk, 2, -1).amax(dim=(2, 4)).reshape(n, hk * wk, -1)  # 2x2 max pool
        k, v = kv[..., :qk_channels], kv[..., qk_channels:]
        q = q.reshape(n, h * w, self.num_heads, self.qk_dim).transpose(1, 2)
        k = k.reshape(n, hk * wk, self.num_heads, self.qk_dim).transpose(1, 2)
        v = v.reshape(n, hk * wk, self.num_heads, self.head_dim).transpose(1, 2)
        return q, k, v


# The choice that SAGANGenerator / SAGANDiscriminator offer as `attention`.
ATTENTION_BLOCKS = {"official": SAGANSelfAttention2d, "compact": SelfAttention2d}
