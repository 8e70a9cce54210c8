"""Transformer GANs: a generator of transformer blocks that grows a token grid from noise (TransGAN,
Jiang et al., 2021) and a Vision Transformer discriminator with ViTGAN's Lipschitz tools (Lee et al., 2022).

Generator: z (with a class embedding when conditional) -> linear -> a bottom_size x bottom_size grid of
tokens -> stages of pre-norm transformer blocks, the resolution doubling between stages (pixel shuffle
or bilinear) -> a linear map of each token to a pixel -> tanh. Each stage adds its own positional
encoding. Self-modulated layer norm carries a code of the noise (and class) into every block; stages at
high resolution can attend in local windows or sparse grids so that 64x64 and 128x128 fit in memory.

Discriminator: patches (optionally overlapping) -> linear embedding + positional encoding -> a class
token or mean pooling -> transformer blocks -> layer norm -> linear logit, plus a projection head
(Miyato & Koyama, 2018) when classes are given. Spectral norm (plain or ViTGAN's improved variant) on
every projection and L2-distance attention with tied queries and keys bound its Lipschitz constant.
Neither network contains a convolution apart from the patch embedding, which is a linear map of patches.

Non-square images: `image_size=[H, W]`. The generator's first grid is H x W scaled down by 2^(stages - 1),
`bottom_size` naming its shorter side (64 x 96 with 4 stages and bottom_size 8: an 8 x 12 grid); stage
resolutions (`window_resolutions`) name a grid's shorter side. The discriminators cut H x W into patches.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import ImageSize, check_image_size, check_ranges
from sagan.layers.heads import ClassProjection
from sagan.layers.norm import ModulatedLayerNorm, embed_classes
from sagan.layers.position import PositionalEncoding2d
from sagan.layers.transformer import (
    AttentionKind,
    SpectralNormMode,
    TokenUpsample,
    TransformerBlock,
    linear,
    lipschitz,
)
from sagan.models.growing import GrowthState, fade_in, growth_resolutions, resize, square_only, zero_term


class TransGANGenerator(nn.Module):
    """Transformer generator from noise.

    Args:
        image_size: output height and width, or [height, width]: the shorter side must equal
            bottom_size * 2^(stages - 1), both sides multiples of 2^(stages - 1).
        channels: output image channels.
        num_classes: classes to condition on; 0 makes the generator unconditional.
        z_dim: size of the noise vector (and of the class embedding).
        bottom_size: side of the first token grid (its shorter side for a non-square image).
        dims: channels of the tokens in each stage, lowest resolution first.
        depths: transformer blocks in each stage.
        num_heads: attention heads in every block; each stage's channels must be divisible by it.
        mlp_ratio: hidden channels of each MLP as a multiple of the stage's channels.
        upsample: "pixel_shuffle" (channels / 4 onto 2x2 new tokens, then a linear to the next stage's
            channels if they differ) or "bilinear" (interpolation, then a linear).
        pos_encoding: "learned" (a table per stage) or "sinusoidal" (fixed).
        norm: how z and y reach every block. "self_modulated": layer norms modulated by a code of the
            noise and class (a 2-layer MLP of them); "conditional": layer norms modulated by the class
            embedding only (plain layer norm when unconditional); "layer": plain layer norm. The noise and
            class always enter through the first linear layer as well.
        style_dim: size of the code of "self_modulated" norms.
        window_size: side of the local attention groups in `window_resolutions` (a group as large as the
            map is global attention).
        window_resolutions: stage resolutions whose blocks attend locally instead of globally.
        window_mode: "window" (size x size neighbourhoods), "grid" (size x size tokens spread over the whole
            map) or "alternate" (window, grid, window, ... block by block: local and sparse global mixing).
        rel_pos: a learned relative position bias per head in every block's attention, over its token
            groups (the window in local attention, the whole map in global attention), as the authors' G.
        qkv_bias: learn a bias in the attention's input projections (the authors' have none).
        noise: noise injection into every attention's input (learned strengths, initially 0).
        final_norm: a layer norm before the pixel projection (the authors' G has none).
        output: "tanh" squashes the pixels into [-1, 1]; "linear" leaves them as the authors' G does while
            training (the discriminator sees them unbounded) and clamps them to [-1, 1] in eval mode, the
            mode of the EMA generator behind samples, metrics and `sagan sample` (the authors clamp when
            saving images).
        grow_from: progressive growing (sagan/models/growing.py) from this stage resolution up to image_size:
            one to-pixel head (norm and linear, as the last stage's) per lower stage, the current stage in
            `growth` (None: no growing).
    """

    def __init__(
        self,
        image_size: ImageSize = 32,
        channels: int = 3,
        num_classes: int = 0,
        z_dim: int = 128,
        bottom_size: int = 8,
        dims: tuple[int, ...] = (256, 64, 16),
        depths: tuple[int, ...] = (5, 4, 2),
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        upsample: Literal["pixel_shuffle", "bilinear"] = "pixel_shuffle",
        pos_encoding: Literal["learned", "sinusoidal"] = "learned",
        norm: Literal["self_modulated", "conditional", "layer"] = "self_modulated",
        style_dim: int = 128,
        window_size: int = 8,
        window_resolutions: tuple[int, ...] = (),
        window_mode: Literal["window", "grid", "alternate"] = "window",
        rel_pos: bool = False,
        qkv_bias: bool = True,
        noise: bool = False,
        final_norm: bool = True,
        output: Literal["tanh", "linear"] = "tanh",
        grow_from: int | None = None,
    ):
        super().__init__()
        if output not in ("tanh", "linear"):
            raise ValueError(f"TransGANGenerator: output must be 'tanh' or 'linear', got {output!r}")
        check_ranges(
            "TransGANGenerator", channels=(channels, "[1, inf)"),
            num_classes=(num_classes, "[0, inf)"), z_dim=(z_dim, "[1, inf)"), bottom_size=(bottom_size, "[1, inf)"),
            dims=(dims, "[1, inf)"), depths=(depths, "[0, inf)"), num_heads=(num_heads, "[1, inf)"),
            mlp_ratio=(mlp_ratio, "(0, inf)"), style_dim=(style_dim, "[1, inf)"), window_size=(window_size, "[1, inf)"),
            window_resolutions=(window_resolutions, "[1, inf)"), grow_from=(grow_from, "[1, inf)"),
        )
        dims, depths = tuple(dims), tuple(depths)
        factor = 2 ** max(len(dims) - 1, 0)  # the first grid is the image scaled down by it
        height, width = check_image_size("TransGANGenerator", image_size, factor, "2^(stages - 1)")
        self.resolutions = [bottom_size * 2**i for i in range(len(dims))]  # shorter side of each stage's grid
        self.grids = [(height // factor * 2**i, width // factor * 2**i) for i in range(len(dims))]  # (rows, columns)
        _check_generator(min(height, width), dims, depths, num_heads, norm, window_size, window_resolutions, window_mode,
                         self.resolutions, self.grids)
        self.image_size = height if height == width else (height, width)
        self.channels, self.num_classes, self.z_dim = channels, num_classes, z_dim
        self.norm_kind, self.output = norm, output
        self.class_embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        code_dim = 2 * z_dim if num_classes else z_dim
        if norm == "self_modulated":
            self.mapping = nn.Sequential(linear(code_dim, style_dim), nn.GELU(), linear(style_dim, style_dim))
            cond_dim = style_dim
        else:
            self.mapping = None
            cond_dim = z_dim if (norm == "conditional" and num_classes) else 0
        self.stem = linear(code_dim, self.grids[0][0] * self.grids[0][1] * dims[0])
        self.upsample = nn.ModuleList(TokenUpsample(dims[i], dims[i + 1], upsample) for i in range(len(dims) - 1))
        self.pos = nn.ModuleList(PositionalEncoding2d(*hw, d, pos_encoding) for hw, d in zip(self.grids, dims))
        self.stages = nn.ModuleList()
        for res, hw, dim, depth in zip(self.resolutions, self.grids, dims, depths):
            blocks = []
            local = res in window_resolutions and window_size < max(hw)
            # side of the attention's token groups: a window, or the whole map (height, width when not square)
            group = window_size if local else (hw[0] if hw[0] == hw[1] else hw)
            for j in range(depth):
                mode = ("window", "grid")[j % 2] if window_mode == "alternate" else window_mode
                blocks.append(TransformerBlock(dim, num_heads, mlp_ratio, cond_dim, "dot", window_size if local else 0,
                                               mode, qkv_bias=qkv_bias, rel_pos=group if rel_pos else 0, noise=noise))
            self.stages.append(nn.ModuleList(blocks))
        self.out_norm = ModulatedLayerNorm(dims[-1], cond_dim) if final_norm else None
        self.to_pixels = linear(dims[-1], channels)
        self.growth, self.grow_heads = None, None
        if grow_from is not None:
            square_only(height, width, "TransGANGenerator")
            self.growth = GrowthState(growth_resolutions(grow_from, height, self.resolutions, "TransGANGenerator"))
            self.grow_heads = nn.ModuleDict({
                str(res): nn.ModuleDict({"linear": linear(dim, channels)} | (
                    {"norm": ModulatedLayerNorm(dim, cond_dim)} if final_norm else {}))
                for res, dim in zip(self.resolutions, dims) if res in self.growth.resolutions[:-1]
            })

    @property
    def raw_training_output(self) -> bool:
        """Whether training-mode outputs may leave [-1, 1] (output="linear"; eval mode clamps)."""
        return self.output == "linear"

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices, [N, num_classes] class weights (a blend) or None
        #   -> [N, channels, H, W] in [-1, 1] (H, W: image_size)
        #   (with output="linear": unbounded in training mode, clamped in eval mode)
        n = z.shape[0]
        embedding = embed_classes(self.class_embed, y) if self.class_embed is not None else None
        code = z if embedding is None else torch.cat([z, embedding], dim=1)
        cond = self.mapping(code) if self.mapping is not None else (
            embedding if self.norm_kind == "conditional" else None
        )
        h = self.stem(code).view(n, self.grids[0][0] * self.grids[0][1], -1)  # [N, h0*w0, dims[0]]
        if self.growth is not None:
            return self._grown(h, cond)
        for i in range(len(self.resolutions)):
            h = self._stage(i, h, cond)
        return self._to_image(h, self.resolutions[-1], cond)

    def _stage(self, i: int, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        # h: [N, rows*cols of stage i-1, dims[i-1]] (stage 0: [N, h0*w0, dims[0]]) -> [N, rows*cols, dims[i]]
        if i > 0:
            h = self.upsample[i - 1](h, self.grids[i - 1])
        h = self.pos[i](h)
        for block in self.stages[i]:
            h = block(h, cond, self.grids[i])
        return h

    def _to_image(self, h: torch.Tensor, res: int, cond: torch.Tensor | None) -> torch.Tensor:
        # h: [N, rows*cols, dim] of the stage whose shorter side is res -> [N, channels, rows, cols]
        i = self.resolutions.index(res)
        if i == len(self.resolutions) - 1:
            norm, to_pixels = self.out_norm, self.to_pixels
        else:
            head = self.grow_heads[str(res)]
            norm, to_pixels = head["norm"] if "norm" in head else None, head["linear"]
        pixels = to_pixels(h if norm is None else norm(h, cond))  # [N, rows*cols, channels]
        if self.output == "tanh":
            pixels = torch.tanh(pixels)
        elif not self.training:
            pixels = pixels.clamp(-1.0, 1.0)
        return pixels.transpose(1, 2).reshape(h.shape[0], self.channels, *self.grids[i])

    def _grown(self, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        # h: [N, bottom^2, dims[0]] -> [N, channels, r, r] at the current stage's resolution r, faded in
        res, previous = self.growth.resolution, self.growth.previous
        before = h
        for i in range(self.resolutions.index(res) + 1):
            before, h = h, self._stage(i, h, cond)
        out = self._to_image(h, res, cond)
        if previous is not None:
            out = fade_in(resize(self._to_image(before, previous, cond), res), out, self.growth)
        return out + zero_term(self.stage_modules(res, unused=True))

    def stage_modules(self, res: int, unused: bool = False) -> list[nn.Module]:
        """The modules that join at stage `res` (its upsampling, positions, blocks and to-pixel head: what
        starts with fresh optimizer state); `unused`: instead those that stage `res` does not run."""
        i = self.resolutions.index(res)
        full_head = [m for m in (self.out_norm, self.to_pixels) if m is not None]
        head = full_head if res == self.image_size else [self.grow_heads[str(res)]]
        if not unused:
            return [*([self.upsample[i - 1]] if i > 0 else []), self.pos[i], self.stages[i], *head]
        previous = res // 2 if res != self.growth.resolutions[0] else None
        later = [m for j in range(i + 1, len(self.resolutions))
                 for m in (self.upsample[j - 1], self.pos[j], self.stages[j])]
        heads = [m for r, m in self.grow_heads.items() if int(r) not in (res, previous)]
        return later + heads + (full_head if res != self.image_size else [])


def _check_generator(image_size, dims, depths, num_heads, norm, window_size, window_resolutions, window_mode,
                     resolutions, grids) -> None:
    who = "TransGANGenerator"
    if not dims or len(dims) != len(depths):
        raise ValueError(f"{who}: dims {dims} and depths {depths} must name the same number (>= 1) of stages")
    if resolutions[-1] != image_size:
        raise ValueError(
            f"{who}: bottom_size {resolutions[0]} with {len(dims)} stages gives {resolutions[-1]}px, not {image_size}px"
        )
    bad = [d for d in dims if d % num_heads]
    if bad:
        raise ValueError(f"{who}: stage channels {bad} are not divisible by num_heads {num_heads}")
    if norm not in ("self_modulated", "conditional", "layer"):
        raise ValueError(f"{who}: norm must be 'self_modulated', 'conditional' or 'layer', got {norm!r}")
    if window_mode not in ("window", "grid", "alternate"):
        raise ValueError(f"{who}: window_mode must be 'window', 'grid' or 'alternate', got {window_mode!r}")
    missing = sorted(set(window_resolutions) - set(resolutions))
    if missing:
        raise ValueError(f"{who}: window_resolutions {missing} not among the stage resolutions {resolutions}")
    local = [hw for r, hw in zip(resolutions, grids) if r in window_resolutions and window_size < max(hw)]
    if window_resolutions and (window_size < 1 or any(side % window_size for hw in local for side in hw)):
        raise ValueError(f"{who}: window_size {window_size} must divide the window resolutions {window_resolutions}"
                         f" (grids {[list(hw) for hw in local]})")


class TransGANDiscriminator(nn.Module):
    """Vision Transformer discriminator with optional class projection.

    Args:
        image_size: input height and width, or [height, width]; must be divisible by `patch_size`.
        channels: input image channels.
        num_classes: classes for the projection head; 0 makes the discriminator unconditional.
        patch_size: side of the patches, i.e. the stride between neighbouring tokens.
        patch_overlap: pixels each patch extends into its neighbours on every side (ViTGAN's overlapping
            patches: kernel patch_size + 2 * overlap at stride patch_size); 0: disjoint patches.
        dim: channels of a token.
        depth: transformer blocks.
        num_heads: attention heads; `dim` must be divisible by it.
        mlp_ratio: hidden channels of each MLP as a multiple of `dim`.
        pos_encoding: "learned" or "sinusoidal" (fixed).
        pool: "cls" (a learned class token read out at the end) or "mean" (the mean of all tokens).
        attention: "l2" (L2-distance attention with tied query/key, Lipschitz) or "dot".
        spectral_norm: "improved" (ViTGAN: W * sigma(W_init) / sigma(W)), "plain" or "none", on the patch
            embedding, every projection, the head and the class embedding.
        grow_from: progressive growing (sagan/models/growing.py) from this resolution up to image_size: one
            patch embedding per lower stage r, of patches image_size / r times smaller (the same token grid,
            so the transformer is shared by every stage), the current stage in `growth` (None: no growing).
            Larger images than the current stage's are average-pooled down to it.
    """

    def __init__(
        self,
        image_size: ImageSize = 32,
        channels: int = 3,
        num_classes: int = 0,
        patch_size: int = 4,
        patch_overlap: int = 0,
        dim: int = 192,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        pos_encoding: Literal["learned", "sinusoidal"] = "learned",
        pool: Literal["cls", "mean"] = "cls",
        attention: AttentionKind = "l2",
        spectral_norm: SpectralNormMode = "improved",
        grow_from: int | None = None,
    ):
        super().__init__()
        who = "TransGANDiscriminator"
        check_ranges(
            who, channels=(channels, "[1, inf)"), num_classes=(num_classes, "[0, inf)"),
            patch_size=(patch_size, "[1, inf)"), patch_overlap=(patch_overlap, "[0, inf)"), dim=(dim, "[1, inf)"),
            depth=(depth, "[0, inf)"), num_heads=(num_heads, "[1, inf)"), mlp_ratio=(mlp_ratio, "(0, inf)"),
            grow_from=(grow_from, "[1, inf)"),
        )
        height, width = check_image_size(who, image_size, patch_size, "patch_size")
        if patch_overlap < 0:
            raise ValueError(f"{who}: patch_overlap must be >= 0, got {patch_overlap}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"{who}: pool must be 'cls' or 'mean', got {pool!r}")
        self.image_size = height if height == width else (height, width)
        self.channels, self.num_classes = channels, num_classes
        kernel = patch_size + 2 * patch_overlap
        self.patch_embed = lipschitz(
            nn.Conv2d(channels, dim, kernel, stride=patch_size, padding=patch_overlap), spectral_norm
        )
        self.pos = PositionalEncoding2d(height // patch_size, width // patch_size, dim, pos_encoding)
        self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02)) if pool == "cls" else None
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, kind=attention, spectral_norm=spectral_norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = linear(dim, 1, spectral_norm)
        self.embed = lipschitz(ClassProjection(num_classes, dim), spectral_norm) if num_classes else None
        self.growth, self.patch_embeds = None, None
        if grow_from is not None:  # a stage r's patches: patch_size * r / image_size pixels, the same grid
            square_only(height, width, who)
            image_size = height
            shrink = [2**k for k in range(patch_size.bit_length()) if patch_size % 2**k == 0 and image_size % 2**k == 0]
            self.growth = GrowthState(growth_resolutions(grow_from, image_size, [image_size // k for k in shrink], who))
            self.patch_embeds = nn.ModuleDict()
            for r in self.growth.resolutions[:-1]:
                size, overlap = patch_size * r // image_size, patch_overlap * r // image_size
                conv = nn.Conv2d(channels, dim, size + 2 * overlap, stride=size, padding=overlap)
                self.patch_embeds[str(r)] = lipschitz(conv, spectral_norm)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, channels, H, W] (H, W: image_size; growing: any size >= the stage's), y: [N] class indices
        #   or None -> [N] logits
        if self.growth is not None:
            h = self.pos(self._grown_tokens(x))
        else:
            h = self.pos(self.patch_embed(x).flatten(2).transpose(1, 2))  # [N, L, dim]
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1).to(h.dtype), h], dim=1)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        features = h[:, 0] if self.cls_token is not None else h.mean(dim=1)  # [N, dim]
        logits = self.head(features).squeeze(1)
        if self.embed is not None:
            logits = logits + self.embed.project(y, features)
        if self.growth is not None:
            logits = logits + zero_term(self.stage_modules(self.growth.resolution, unused=True))
        return logits

    def _embed(self, x: torch.Tensor, res: int) -> torch.Tensor:
        # x: [N, channels, res, res] -> [N, L, dim] tokens of the patch embedding of resolution res
        embed = self.patch_embed if res == self.image_size else self.patch_embeds[str(res)]
        return embed(x).flatten(2).transpose(1, 2)

    def _grown_tokens(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, channels, H, W], H >= r -> [N, L, dim] the stage r's tokens, faded in from the last stage's
        res, previous = self.growth.resolution, self.growth.previous
        x = resize(x, res)
        tokens = self._embed(x, res)
        if previous is not None:
            tokens = fade_in(self._embed(resize(x, previous), previous), tokens, self.growth)
        return tokens

    def stage_modules(self, res: int, unused: bool = False) -> list[nn.Module]:
        """The module that joins at stage `res` (its patch embedding: what starts with fresh optimizer state;
        the transformer serves every stage); `unused`: instead those that stage `res` does not run."""
        embeds = {**self.patch_embeds, str(self.image_size): self.patch_embed}
        if not unused:
            return [embeds[str(res)]]
        previous = res // 2 if res != self.growth.resolutions[0] else None
        return [m for r, m in embeds.items() if int(r) not in (res, previous)]


class TransGANMultiScaleDiscriminator(nn.Module):
    """The multi-scale ViT discriminator of TransGAN's CIFAR-10 model (the authors' `ViT_custom_scale2_rp_noise`).

    Two patch streams of the same image: `patch_size` patches embedded to 3/4 of `dim` channels (the fine
    grid) and `2 * patch_size` patches embedded to the other 1/4 (the coarse grid). Stage 1: `depth`
    blocks on the fine grid; 2x2 average pooling of its tokens to the coarse grid, concatenated with the
    coarse stream's to `dim` channels, plus a second positional encoding. Stage 2: `depth` blocks. Then a
    class token joins, one more block (global attention, no relative positions) mixes it in, and a layer
    norm and a linear head read the logit from it; a projection head when classes are given. The fine and
    coarse stages attend globally over their grids with a learned relative position bias per head.

    Args:
        image_size: input height and width, or [height, width]; must be divisible by 2 * patch_size.
        channels: input image channels.
        num_classes: classes for the projection head; 0 makes the discriminator unconditional.
        patch_size: side of the fine patches (the coarse ones are twice as large).
        dim: channels of the tokens after the streams merge (a multiple of 4; 3/4 of it in stage 1).
        depth: transformer blocks in each of the two stages (plus the class-token block).
        num_heads: attention heads; must divide `dim` and `3 * dim / 4`.
        mlp_ratio: hidden channels of each MLP as a multiple of its block's channels.
        pos_encoding: "learned" (the authors') or "sinusoidal".
        attention: "dot" (the authors') or "l2".
        spectral_norm: "none" (the authors'), "plain" or "improved" on the patch embeddings, projections
            and head.
        qkv_bias: learn a bias in the attention's input projections (the authors' have none).
        rel_pos: learned relative position bias in the stage blocks (the authors').
        noise: noise injection into every attention's input (the authors').
    """

    def __init__(
        self,
        image_size: ImageSize = 32,
        channels: int = 3,
        num_classes: int = 0,
        patch_size: int = 2,
        dim: int = 384,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        pos_encoding: Literal["learned", "sinusoidal"] = "learned",
        attention: AttentionKind = "dot",
        spectral_norm: SpectralNormMode = "none",
        qkv_bias: bool = False,
        rel_pos: bool = True,
        noise: bool = True,
    ):
        super().__init__()
        who = "TransGANMultiScaleDiscriminator"
        check_ranges(
            who, channels=(channels, "[1, inf)"), num_classes=(num_classes, "[0, inf)"),
            patch_size=(patch_size, "[1, inf)"), dim=(dim, "[1, inf)"), depth=(depth, "[0, inf)"),
            num_heads=(num_heads, "[1, inf)"), mlp_ratio=(mlp_ratio, "(0, inf)"),
        )
        height, width = check_image_size(who, image_size, 2 * patch_size, "2 * patch_size")
        if dim < 4 or dim % 4 or (3 * dim // 4) % num_heads or dim % num_heads:
            raise ValueError(f"{who}: dim must be a multiple of 4 whose 3/4 and whole num_heads ({num_heads}) "
                             f"divide, got {dim}")
        self.image_size = height if height == width else (height, width)
        self.channels, self.num_classes = channels, num_classes
        fine, coarse = 3 * dim // 4, dim // 4
        self.grid = (height // patch_size, width // patch_size)  # the fine grid; the coarse one is half of it
        gh, gw = self.grid
        self.embed_fine = lipschitz(nn.Conv2d(channels, fine, patch_size, stride=patch_size), spectral_norm)
        self.embed_coarse = lipschitz(nn.Conv2d(channels, coarse, 2 * patch_size, stride=2 * patch_size), spectral_norm)
        self.pos_fine = PositionalEncoding2d(gh, gw, fine, pos_encoding)
        self.pos_coarse = PositionalEncoding2d(gh // 2, gw // 2, dim, pos_encoding)

        def block(channels_: int, side: int | tuple[int, int]) -> TransformerBlock:
            return TransformerBlock(channels_, num_heads, mlp_ratio, kind=attention, spectral_norm=spectral_norm,
                                    qkv_bias=qkv_bias, rel_pos=side if rel_pos else 0, noise=noise)

        fine_side, coarse_side = (gh, gh // 2) if gh == gw else ((gh, gw), (gh // 2, gw // 2))
        self.blocks_fine = nn.ModuleList(block(fine, fine_side) for _ in range(depth))
        self.blocks_coarse = nn.ModuleList(block(dim, coarse_side) for _ in range(depth))
        self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
        self.last_block = block(dim, 0)
        self.norm = nn.LayerNorm(dim)
        self.head = linear(dim, 1, spectral_norm)
        self.embed = lipschitz(ClassProjection(num_classes, dim), spectral_norm) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, channels, H, W] (H, W: image_size), y: [N] class indices or None -> [N] logits
        n, (gh, gw) = x.shape[0], self.grid
        h = self.pos_fine(self.embed_fine(x).flatten(2).transpose(1, 2))  # [N, gh*gw, 3 dim/4]
        for blk in self.blocks_fine:
            h = blk(h)
        h = F.avg_pool2d(h.transpose(1, 2).reshape(n, -1, gh, gw), 2).flatten(2).transpose(1, 2)  # [N, gh*gw/4, 3 dim/4]
        coarse = self.embed_coarse(x).flatten(2).transpose(1, 2)  # [N, gh*gw/4, dim/4]
        h = self.pos_coarse(torch.cat([h, coarse], dim=-1))  # [N, gh*gw/4, dim]
        for blk in self.blocks_coarse:
            h = blk(h)
        h = torch.cat([self.cls_token.expand(n, -1, -1).to(h.dtype), h], dim=1)
        features = self.norm(self.last_block(h))[:, 0]  # [N, dim]
        logits = self.head(features).squeeze(1)
        if self.embed is not None:
            logits = logits + self.embed.project(y, features)
        return logits


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "generator-32": (
        TransGANGenerator,
        dict(image_size=32, channels=3, z_dim=8, bottom_size=8, dims=(16, 8, 4), depths=(1, 1, 1), num_heads=2,
             style_dim=8, window_size=8, window_resolutions=(32,)),
    ),
    "generator-32-cond": (
        TransGANGenerator,
        dict(image_size=32, channels=1, num_classes=3, z_dim=8, bottom_size=8, dims=(16, 8, 4), depths=(1, 1, 2),
             num_heads=2, upsample="bilinear", pos_encoding="sinusoidal", style_dim=8, window_size=4,
             window_resolutions=(16, 32), window_mode="alternate"),
    ),
    "generator-32-authors": (  # the CIFAR-10 script's options: relative positions, no q/k/v bias, linear output
        TransGANGenerator,
        dict(image_size=32, channels=3, z_dim=8, bottom_size=8, dims=(16, 8, 4), depths=(1, 1, 1), num_heads=2,
             norm="layer", rel_pos=True, qkv_bias=False, final_norm=False, output="linear", noise=True,
             window_size=4, window_resolutions=(32,)),
    ),
    "generator-32-cond-ln": (
        TransGANGenerator,
        dict(image_size=32, channels=3, num_classes=3, z_dim=8, bottom_size=16, dims=(8, 4), depths=(1, 1),
             num_heads=2, norm="conditional", window_size=8, window_resolutions=(32,), window_mode="grid"),
    ),
    "generator-64": (
        TransGANGenerator,
        dict(image_size=64, channels=3, z_dim=8, bottom_size=8, dims=(16, 8, 8, 4), depths=(1, 1, 1, 1),
             num_heads=2, norm="layer", window_size=8, window_resolutions=(32, 64)),
    ),
    "discriminator-32": (TransGANDiscriminator, dict(image_size=32, channels=3, patch_size=4, dim=16, depth=1, num_heads=2)),
    "discriminator-32-cond": (
        TransGANDiscriminator,
        dict(image_size=32, channels=1, num_classes=3, patch_size=4, patch_overlap=2, dim=16, depth=2, num_heads=2,
             pos_encoding="sinusoidal", pool="mean", attention="dot", spectral_norm="plain"),
    ),
    "discriminator-32-multiscale": (
        TransGANMultiScaleDiscriminator, dict(image_size=32, channels=3, patch_size=4, dim=16, depth=1, num_heads=2)
    ),
    "discriminator-32-multiscale-cond": (
        TransGANMultiScaleDiscriminator,
        dict(image_size=32, channels=1, num_classes=3, patch_size=2, dim=8, depth=1, num_heads=2, attention="l2",
             spectral_norm="improved", qkv_bias=True, rel_pos=False, noise=False),
    ),
    "discriminator-64": (
        TransGANDiscriminator,
        dict(image_size=64, channels=3, patch_size=8, patch_overlap=1, dim=8, depth=1, num_heads=2,
             spectral_norm="none"),
    ),
    "generator-32x48": (  # non-square: 8 x 12, 16 x 24 and 32 x 48 grids, relative positions over rectangles
        TransGANGenerator,
        dict(image_size=(32, 48), channels=3, z_dim=8, bottom_size=8, dims=(16, 8, 4), depths=(1, 1, 1), num_heads=2,
             style_dim=8, rel_pos=True, window_size=8, window_resolutions=(32,)),
    ),
    "discriminator-32x48": (
        TransGANDiscriminator, dict(image_size=(32, 48), channels=3, patch_size=4, dim=16, depth=1, num_heads=2)
    ),
    "discriminator-48x32-multiscale": (
        TransGANMultiScaleDiscriminator, dict(image_size=(48, 32), channels=1, patch_size=4, dim=16, depth=1, num_heads=2)
    ),
}
