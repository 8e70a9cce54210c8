"""Transformer pieces for GANs: multi-head attention (dot product or L2 distance), local attention in
windows or grids of a token map, and pre-norm blocks whose layer norms can be modulated by a vector.

Attention runs through `scaled_dot_product_attention`, so PyTorch can pick a fused kernel (flash or
memory-efficient on GPUs, flash on CPUs) in the forward and the backward pass. Those kernels have no
double backward: a gradient penalty or R1 through these layers runs inside
`sagan.layers.attention.math_attention()`, as the penalties of `sagan.losses` do.

TransGAN's attention options: a learned relative position bias per head (`rel_pos`, added to the logits
of every query-key pair through `attn_mask`, in global and in windowed attention) and noise injection
(`noise`: Gaussian noise, one value per token, scaled by a learned strength that starts at 0, added to
the attention's input, as in the authors' discriminator).

L2-distance attention (Kim et al., 2021, "The Lipschitz constant of self-attention"; ViTGAN's
discriminator) scores a query against a key by -||q - k||^2 / sqrt(d) with one projection shared by
queries and keys, which makes attention Lipschitz. Expanding the square, the -||q_i||^2 part is the same
for every key of row i and cancels in the softmax, so the scores equal those of dot-product attention
between [2q, -1] and [k, ||k||^2]: one extra channel, and the fused kernels still apply.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sagan.layers.norm import ModulatedLayerNorm, improved_spectral_norm, spectral_norm
from sagan.layers.position import RelativePositionBias

SpectralNormMode = Literal["none", "plain", "improved"]
AttentionKind = Literal["dot", "l2"]
WindowMode = Literal["window", "grid"]


def lipschitz(module: nn.Module, mode: SpectralNormMode) -> nn.Module:
    """`module` with no, plain or improved (ViTGAN) spectral norm on its weight."""
    if mode == "none":
        return module
    if mode == "plain":
        return spectral_norm(module)
    if mode == "improved":
        return improved_spectral_norm(module)
    raise ValueError(f"spectral_norm must be 'none', 'plain' or 'improved', got {mode!r}")


def linear(in_features: int, out_features: int, sn: SpectralNormMode = "none", bias: bool = True) -> nn.Linear:
    """A linear layer with Xavier-uniform weights and zero bias (as TransGAN), then spectrally normed.

    The initialization matters under improved spectral norm, which keeps each layer's initial gain: with
    ViT's small normal init (std 0.02) every residual branch of a discriminator would stay nearly silent.
    """
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return lipschitz(layer, sn)


# ------------------------------------------------------------------------------- local attention groups
def window_partition(x: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """[N, H*W, D] -> [N * H/size * W/size, size*size, D]: the tokens of each size x size window."""
    n, _, d = x.shape
    x = x.view(n, height // size, size, width // size, size, d)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, size * size, d)


def window_merge(x: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """Inverse of `window_partition`: [N * H/size * W/size, size*size, D] -> [N, H*W, D]."""
    d = x.shape[-1]
    x = x.view(-1, height // size, width // size, size, size, d)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height * width, d)


def grid_partition(x: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """[N, H*W, D] -> [N * H/size * W/size, size*size, D]: groups of size x size tokens spread evenly
    over the whole map (strides H/size and W/size), a sparse global view (MaxViT's grid attention)."""
    n, _, d = x.shape
    x = x.view(n, size, height // size, size, width // size, d)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, size * size, d)


def grid_merge(x: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """Inverse of `grid_partition`."""
    d = x.shape[-1]
    x = x.view(-1, height // size, width // size, size, size, d)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(-1, height * width, d)


PARTITIONS = {"window": (window_partition, window_merge), "grid": (grid_partition, grid_merge)}


# ----------------------------------------------------------------------------------------- attention
class MultiHeadAttention(nn.Module):
    """Multi-head self-attention over a token sequence, globally or in local groups of a token grid.

    Args:
        dim: channels of a token.
        num_heads: attention heads; `dim` must be divisible by it.
        kind: "dot" for softmax(q k^T / sqrt(d)) v, or "l2" for softmax(-||q - k||^2 / sqrt(d)) v with
            tied query and key projections (Lipschitz; ViTGAN).
        window_size: side of the local groups when the tokens form a grid (0: global attention). A
            group as large as the grid is global attention.
        window_mode: "window" (each token attends within its size x size neighbourhood) or "grid" (within
            size x size tokens spread evenly over the map).
        spectral_norm: "none", "plain" or "improved" spectral norm on the projections.
        qkv_bias: learn a bias in the input projection.
        rel_pos: side of the square token groups that a learned relative position bias covers (the
            window side for local attention, the map side for global attention), or their (height, width)
            on a non-square map; 0: no bias.
        noise: inject per-token Gaussian noise with a learned strength (initially 0) into the input.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        kind: AttentionKind = "dot",
        window_size: int = 0,
        window_mode: WindowMode = "window",
        spectral_norm: SpectralNormMode = "none",
        qkv_bias: bool = True,
        rel_pos: int | tuple[int, int] = 0,
        noise: bool = False,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MultiHeadAttention: dim {dim} is not divisible by num_heads {num_heads}")
        if kind not in ("dot", "l2"):
            raise ValueError(f"MultiHeadAttention: kind must be 'dot' or 'l2', got {kind!r}")
        if window_mode not in PARTITIONS:
            raise ValueError(f"MultiHeadAttention: window_mode must be one of {sorted(PARTITIONS)}, got {window_mode!r}")
        self.num_heads, self.head_dim, self.kind = num_heads, dim // num_heads, kind
        self.window_size, self.window_mode = window_size, window_mode
        projections = 2 if kind == "l2" else 3  # l2: one shared query/key projection, one value projection
        self.qkv = linear(dim, projections * dim, spectral_norm, bias=qkv_bias)
        self.out = linear(dim, dim, spectral_norm)
        if min(rel_pos if isinstance(rel_pos, (tuple, list)) else (rel_pos,)) < 0:
            raise ValueError(f"MultiHeadAttention: rel_pos must be >= 0, got {rel_pos}")
        self.rel_pos = RelativePositionBias(rel_pos, num_heads) if rel_pos else None
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise else None

    def position_bias(self, tokens: int) -> torch.Tensor | None:
        """The additive logit bias [nh, T, T] for groups of `tokens` tokens, or None without `rel_pos`."""
        if self.rel_pos is None:
            return None
        if tokens != self.rel_pos.tokens:
            raise ValueError(f"MultiHeadAttention: relative positions cover groups of {self.rel_pos.tokens} tokens "
                             f"(side {self.rel_pos.side}), got groups of {tokens} tokens")
        return self.rel_pos()

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None, return_attention: bool = False):
        # x: [N, L, D] (a row-major H x W grid when hw=(H, W) is given) -> [N, L, D]
        #   (and with return_attention the softmax weights [N, nh, L, L]: a local group's rows on the full grid)
        if self.noise_strength is not None:  # one noise value per token, shared by its channels
            x = x + torch.randn(*x.shape[:-1], 1, device=x.device, dtype=x.dtype) * self.noise_strength
        local = self.window_size > 0 and hw is not None and self.window_size < max(hw)
        if self.window_size > 0 and hw is None:
            raise ValueError("MultiHeadAttention: windowed attention needs the grid shape hw=(H, W)")
        if local:
            if hw[0] % self.window_size or hw[1] % self.window_size:
                raise ValueError(f"MultiHeadAttention: window_size {self.window_size} does not divide the grid {hw}")
            partition, merge = PARTITIONS[self.window_mode]
            x = partition(x, hw[0], hw[1], self.window_size)
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, -1, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [P, B, nh, T, hs]
        bias = self.position_bias(t)  # [nh, T, T] added to the logits, or None
        if return_attention:  # the same attention with its weights spelled out (for attention maps)
            out, weights = explicit_attention(*qkv.unbind(0), kind=self.kind, bias=bias)
        elif self.kind == "dot":
            q, k, v = qkv.unbind(0)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))
        else:
            qk, v = qkv.unbind(0)
            out = l2_attention(qk, v, bias)
        out = self.out(out.transpose(1, 2).reshape(b, t, d))
        if not return_attention:
            return merge(out, hw[0], hw[1], self.window_size) if local else out
        if local:
            out = merge(out, hw[0], hw[1], self.window_size)
            weights = groups_to_grid(weights, hw[0], hw[1], self.window_size, self.window_mode)
        return out, weights


def explicit_attention(
    *qkv: torch.Tensor, kind: AttentionKind = "dot", bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with its softmax weights: (q, k, v) for "dot", (qk, v) for "l2" (tied queries and keys).

    Each [B, nh, T, hs] -> (out [B, nh, T, hs], weights [B, nh, T, T]); `out` is what the fused path gives.
    `bias` (broadcast to [B, nh, T, T]) is added to the scores, as `attn_mask` in the fused kernel.
    """
    if kind == "dot":
        q, k, v = qkv
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    else:
        qk, v = qkv
        scores = -torch.cdist(qk.float(), qk.float()).square().to(qk.dtype) * qk.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias
    weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return weights @ v, weights


def groups_to_grid(weights: torch.Tensor, height: int, width: int, size: int, mode: WindowMode) -> torch.Tensor:
    """Weights within local groups [N * G, nh, s*s, s*s] -> [N, nh, H*W, H*W] over the whole row-major grid
    (zero between tokens of different groups), so a query's row can be drawn on the full map."""
    partition, _ = PARTITIONS[mode]
    index = partition(torch.arange(height * width, device=weights.device).view(1, -1, 1), height, width, size)
    index = index.squeeze(-1)  # [G, s*s]: the grid position of each group member
    groups, members = index.shape
    heads = weights.shape[1]
    weights = weights.view(-1, groups, heads, members, members).transpose(1, 2)  # [N, nh, G, s*s, s*s]
    full = weights.new_zeros(weights.shape[0], heads, height * width, height * width)
    full[:, :, index[:, :, None], index[:, None, :]] = weights
    return full


def l2_attention(qk: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(-||q_i - q_j||^2 / sqrt(d) + bias_ij) v for tied queries and keys, on the fused kernels.

    qk: [B, nh, T, hs] (queries = keys), v: [B, nh, T, hs], bias: [nh, T, T] or None -> [B, nh, T, hs].
    """
    squared = qk.float().square().sum(-1, keepdim=True).to(qk.dtype)  # ||k_j||^2
    q = torch.cat([2 * qk, -torch.ones_like(squared)], dim=-1)
    k = torch.cat([qk, squared], dim=-1)
    v = torch.cat([v, torch.zeros_like(squared)], dim=-1)  # fused kernels want one head size for q, k, v
    mask = None if bias is None else bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=qk.shape[-1] ** -0.5)
    return out[..., :-1]


# --------------------------------------------------------------------------------------------- blocks
class MLP(nn.Sequential):
    """Two linear layers with a GELU between them.

    Args:
        dim: channels in and out.
        hidden: channels in between.
        spectral_norm: "none", "plain" or "improved" spectral norm on both layers.
    """

    def __init__(self, dim: int, hidden: int, spectral_norm: SpectralNormMode = "none"):
        super().__init__(linear(dim, hidden, spectral_norm), nn.GELU(), linear(hidden, dim, spectral_norm))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x)).

    Args:
        dim: channels of a token.
        num_heads: attention heads.
        mlp_ratio: hidden channels of the MLP as a multiple of `dim`.
        cond_dim: size of the vector that modulates both layer norms (0: plain layer norm).
        kind: "dot" or "l2" attention (see `MultiHeadAttention`).
        window_size: side of local attention groups on a grid (0: global attention).
        window_mode: "window" or "grid" groups.
        spectral_norm: "none", "plain" or "improved" spectral norm on every projection.
        qkv_bias: learn a bias in the attention's input projection.
        rel_pos: side (or (height, width)) of the token groups covered by a learned relative position bias
            (0: none).
        noise: noise injection into the attention's input (see `MultiHeadAttention`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        cond_dim: int = 0,
        kind: AttentionKind = "dot",
        window_size: int = 0,
        window_mode: WindowMode = "window",
        spectral_norm: SpectralNormMode = "none",
        qkv_bias: bool = True,
        rel_pos: int | tuple[int, int] = 0,
        noise: bool = False,
    ):
        super().__init__()
        self.norm1 = ModulatedLayerNorm(dim, cond_dim)
        self.attention = MultiHeadAttention(dim, num_heads, kind, window_size, window_mode, spectral_norm, qkv_bias,
                                            rel_pos, noise)
        self.norm2 = ModulatedLayerNorm(dim, cond_dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), spectral_norm)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, hw: tuple[int, int] | None = None
    ) -> torch.Tensor:
        # x: [N, L, dim], cond: [N, cond_dim] or None, hw: (H, W) when the tokens form a grid -> [N, L, dim]
        x = x + self.attention(self.norm1(x, cond), hw)
        return x + self.mlp(self.norm2(x, cond))


class TokenUpsample(nn.Module):
    """Doubles the resolution of a token grid, then maps the channels to `out_dim` by a linear layer.

    Pixel shuffle (TransGAN) moves groups of 4 channels onto a 2x2 patch of new tokens, so it leaves
    `in_dim / 4` channels; bilinear interpolation keeps all `in_dim`. The linear layer is left out when
    those already number `out_dim`.

    Args:
        in_dim: channels of the input tokens.
        out_dim: channels of the output tokens.
        mode: "pixel_shuffle" or "bilinear".
    """

    def __init__(self, in_dim: int, out_dim: int, mode: Literal["pixel_shuffle", "bilinear"] = "pixel_shuffle"):
        super().__init__()
        if mode not in ("pixel_shuffle", "bilinear"):
            raise ValueError(f"TokenUpsample: mode must be 'pixel_shuffle' or 'bilinear', got {mode!r}")
        if mode == "pixel_shuffle" and in_dim % 4:
            raise ValueError(f"TokenUpsample: pixel shuffle needs channels divisible by 4, got {in_dim}")
        self.mode = mode
        mid = in_dim // 4 if mode == "pixel_shuffle" else in_dim
        self.proj = linear(mid, out_dim) if mid != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        # x: [N, H*W, in_dim], hw = (H, W) -> [N, 2H*2W, out_dim]
        n, _, d = x.shape
        grid = x.transpose(1, 2).reshape(n, d, hw[0], hw[1])
        if self.mode == "pixel_shuffle":
            grid = F.pixel_shuffle(grid, 2)
        else:
            grid = F.interpolate(grid, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.proj(grid.flatten(2).transpose(1, 2))
