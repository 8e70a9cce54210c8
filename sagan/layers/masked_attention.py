"""Attention that reads only known tokens, for repairing images (MAT, Li et al., 2022).

A token of a damaged image's feature map is *known* when its patch holds at least one known pixel. In
`masked_attention` every query (known or in the hole) attends over the known keys only, so the features
of a hole are built from what is really there and never from the zeros that fill it. The restriction is
an `attn_mask` of `scaled_dot_product_attention`, so PyTorch still picks its fused kernels (flash on
CPUs, memory-efficient on GPUs); as with `sagan.layers.attention`, a double backward through it runs
inside `math_attention()`.

A row with no known key (the whole image, or with local windows a whole window, lies in the hole) reads
nothing: its output is exactly 0 and so are its gradients, on every kernel and PyTorch version, with no
NaN (the row is given every key, whose result is then multiplied by 0). `MaskedTransformerBlock` then
updates the mask as MAT does: after a block, every token of a group (the image, or its window) that had a
known key counts as known, so with windows the known region grows block by block into the hole.
"""

import torch
import torch.nn.functional as F
from torch import nn

from sagan.layers.transformer import MLP, linear, window_merge, window_partition


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_known: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over the known keys only; rows without a known key give 0.

    q, k, v: [B, nh, T, hs]; key_known: [B, T] bool (True: the key may be read) -> [B, nh, T, hs].
    """
    has_known = key_known.any(dim=-1)  # [B]
    allowed = key_known | ~has_known[:, None]  # a row with nothing known gets every key, and is zeroed below
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None, None, :])
    return out * has_known[:, None, None, None].to(out.dtype)


def masked_attention_weights(q: torch.Tensor, k: torch.Tensor, key_known: torch.Tensor) -> torch.Tensor:
    """The attention weights `masked_attention` uses, computed in plain math (for pictures, not training).

    q, k: [B, nh, T, hs]; key_known: [B, T] bool -> [B, nh, T, T], rows summing to 1 (0 without known keys).
    """
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(~key_known[:, None, None, :], float("-inf"))
    has_known = key_known.any(dim=-1)[:, None, None, None]
    return torch.where(has_known, torch.softmax(scores.masked_fill(~has_known, 0.0), dim=-1), 0.0)


class MaskedAttention(nn.Module):
    """Multi-head self-attention over a token grid whose keys are restricted to known tokens.

    Args:
        dim: channels of a token.
        num_heads: attention heads; `dim` must be divisible by it.
        window_size: side of the local windows the grid is cut into (0: global attention over the grid).
    """

    def __init__(self, dim: int, num_heads: int = 4, window_size: int = 0):
        super().__init__()
        if dim < 1 or num_heads < 1 or dim % num_heads:
            raise ValueError(f"MaskedAttention: dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if window_size < 0:
            raise ValueError(f"MaskedAttention: window_size must be >= 0, got {window_size}")
        self.num_heads, self.head_dim, self.window_size = num_heads, dim // num_heads, window_size
        self.qkv = linear(dim, 3 * dim)
        self.out = linear(dim, dim)

    def _groups(self, x: torch.Tensor, known: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and known flags of the attention groups: [G, T, D], [G, T] (G = N for global attention)."""
        if not self.window_size:
            return x, known
        if hw[0] % self.window_size or hw[1] % self.window_size:
            raise ValueError(f"MaskedAttention: window_size {self.window_size} does not divide the grid {hw}")
        flags = window_partition(known[..., None].to(x.dtype), hw[0], hw[1], self.window_size)[..., 0] > 0
        return window_partition(x, hw[0], hw[1], self.window_size), flags

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)  # each [G, nh, T, hs]

    def forward(self, x: torch.Tensor, known: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, H*W, D] (row-major grid hw=(H, W)), known: [N, H*W] bool -> [N, H*W, D], known after: [N, H*W]
        groups, flags = self._groups(x, known, hw)
        q, k, v = self._heads(groups)
        out = masked_attention(q, k, v, flags)
        g, t, d = groups.shape
        out = self.out(out.transpose(1, 2).reshape(g, t, d))
        reached = flags.any(dim=-1, keepdim=True).expand(g, t)  # MAT: a group with a known key is known after
        if self.window_size:
            out = window_merge(out, hw[0], hw[1], self.window_size)
            reached = window_merge(reached[..., None].to(x.dtype), hw[0], hw[1], self.window_size)[..., 0] > 0
        return out, reached

    @torch.no_grad()
    def weights(self, x: torch.Tensor, known: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Attention weights, head-averaged: [N, H*W] tokens in, [G, T, T] out (G = N when global)."""
        groups, flags = self._groups(x, known, hw)
        q, k, _ = self._heads(groups)
        return masked_attention_weights(q, k, flags).mean(dim=1)


class MaskedTransformerBlock(nn.Module):
    """Pre-norm transformer block over a token grid with `MaskedAttention`; passes the updated mask on.

    Args:
        dim: channels of a token.
        num_heads: attention heads.
        mlp_ratio: hidden channels of the MLP as a multiple of `dim`.
        window_size: side of local attention windows (0: global attention).
    """

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0, window_size: int = 0):
        super().__init__()
        if mlp_ratio <= 0:
            raise ValueError(f"MaskedTransformerBlock: mlp_ratio must be > 0, got {mlp_ratio}")
        self.norm1 = nn.LayerNorm(dim)
        self.attention = MaskedAttention(dim, num_heads, window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, max(int(dim * mlp_ratio), 1))

    def forward(self, x: torch.Tensor, known: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, H*W, dim], known: [N, H*W] bool, hw = (H, W) -> [N, H*W, dim], known after: [N, H*W]
        attended, known_after = self.attention(self.norm1(x), known, hw)
        x = x + attended
        return x + self.mlp(self.norm2(x)), known_after
