"""Pre-norm transformer blocks over token sequences, causal (decoders) or bidirectional (encoders).

Attention runs through `scaled_dot_product_attention` with `is_causal=True` in a decoder, so PyTorch can
use its fused kernels. For sampling one token at a time a `KVCache` keeps the keys and values of the
positions already seen, so each step costs one position instead of the whole prefix.
"""

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys and values of the positions decoded so far, per attention layer.

    The first call may hold several positions (a prompt, attended causally); later calls one each.
    """

    def __init__(self):
        self._kv: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def extend(self, layer: nn.Module, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Appends this step's keys and values `[N, nh, t, hs]` to the layer's and returns all of them."""
        if layer in self._kv:
            past_k, past_v = self._kv[layer]
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        self._kv[layer] = (k, v)
        return k, v

    def __len__(self) -> int:
        """Positions cached (0 before the first step)."""
        return next(iter(self._kv.values()))[0].shape[2] if self._kv else 0


class SequenceSelfAttention(nn.Module):
    """Multi-head self-attention over the positions of a sequence.

    Args:
        dim: model width.
        num_heads: attention heads; `dim` must be divisible by it.
        causal: each position attends only to itself and earlier positions.
        dropout: dropout on the attention weights and the output (training only).
    """

    def __init__(self, dim: int, num_heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.causal, self.dropout = num_heads, causal, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.out_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, return_attention: bool = False):
        # x: [N, T, C] -> [N, T, C]; with a cache, x holds the next position(s) after the cached ones
        #   (and with return_attention the softmax weights [N, nh, T, cached + T], zero on future positions)
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        if cache is not None:  # q, k, v: [N, nh, t, hs]; k, v then cover the cached positions too
            k, v = cache.extend(self, k, v)
        past = k.shape[2] - t
        if past and t > 1 and self.causal:
            raise ValueError("a cached causal attention step takes one position at a time")
        dropout = self.dropout if self.training else 0.0
        if return_attention:  # the same attention with its weights spelled out (for attention maps)
            scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
            if self.causal and past == 0 and t > 1:
                scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)
            y = F.dropout(weights, dropout, self.training) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=self.causal and past == 0 and t > 1)
        y = self.out_dropout(self.out(y.transpose(1, 2).reshape(n, t, c)))
        return (y, weights) if return_attention else y


class TransformerBlock(nn.Module):
    """x + attention(norm(x)), then x + MLP(norm(x)) (pre-norm, GELU MLP).

    Args:
        dim: model width.
        num_heads: attention heads.
        causal: causal attention (a decoder block) or bidirectional (an encoder block).
        mlp_ratio: hidden width of the MLP as a multiple of `dim`.
        dropout: dropout in attention and MLP (training only).
    """

    def __init__(self, dim: int, num_heads: int, causal: bool, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SequenceSelfAttention(dim, num_heads, causal, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        # x: [N, T, C] -> [N, T, C]
        x = x + self.attention(self.norm1(x), cache)
        return x + self.mlp(self.norm2(x))
