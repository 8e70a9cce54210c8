"""Video Transformer GANs: a generator and a discriminator over space-time tokens with factorized attention.

A clip of T frames is a T x H x W grid of tokens. Full attention over all of them costs (T H W)^2; each
block here attends twice instead (divided space-time attention, TimeSformer, Bertasius et al., 2021):
across time, every token with the tokens at its place in the other frames (H W groups of T), then across
space, every token with the tokens of its own frame (T groups of H W), then an MLP. Positions are coded
in both: a spatial code per place and a temporal code per frame, added (fixed sinusoids or learned).

Generator: z (with a class embedding when conditional) -> linear -> one bottom_size x bottom_size grid
of tokens, the same for every time step -> + space-time positions -> stages of space-time blocks whose
layer norms are modulated by a code of the noise (ViTGAN's self-modulation), the grids' resolution
doubling between stages -> a linear map of each final token to a tubelet of `tubelet` frames x
`patch_size`^2 pixels (1 x 1 x 1: a pixel) -> tanh. The time steps start equal and differ through the
temporal code and temporal attention: motion is made by attention across frames.

Discriminator: tubelets (`tubelet` frames x `patch_size`^2 pixels) -> linear embedding + space-time
positions -> space-time blocks with L2 attention and (improved) spectral norm -> layer norm -> mean of
all tokens -> linear logit, plus a projection head when classes are given. A tubelet spans several
frames, and temporal attention compares every place across the clip: it judges frames and motion.

Both networks reuse `sagan.layers.transformer` (attention, MLP, upsampling, spectral norms) and
`sagan.layers.position` (sinusoids) as they are.
"""

from typing import Literal

import torch
from torch import nn

from sagan.errors import check_ranges
from sagan.layers.heads import ClassProjection
from sagan.layers.norm import ModulatedLayerNorm
from sagan.layers.position import sinusoidal_encoding, sinusoidal_encoding_2d
from sagan.layers.transformer import (
    MLP,
    AttentionKind,
    MultiHeadAttention,
    SpectralNormMode,
    TokenUpsample,
    linear,
    lipschitz,
)


class SpaceTimePositions(nn.Module):
    """Adds a spatial code (per place of a frame) and a temporal code (per frame) to every token.

    Args:
        frames: frames of the clip (T).
        height: rows of a frame's token grid.
        width: columns of a frame's token grid.
        dim: channels of a token.
        kind: "sinusoidal" (fixed: `sinusoidal_encoding_2d` over places, `sinusoidal_encoding` over frames)
            or "learned" (two tables, initialized from a normal distribution with std 0.02).
    """

    def __init__(self, frames: int, height: int, width: int, dim: int, kind: Literal["sinusoidal", "learned"]):
        super().__init__()
        if kind not in ("sinusoidal", "learned"):
            raise ValueError(f"SpaceTimePositions: kind must be 'sinusoidal' or 'learned', got {kind!r}")
        self.frames, self.places = frames, height * width
        if kind == "learned":
            self.spatial = nn.Parameter(nn.init.trunc_normal_(torch.zeros(height * width, dim), std=0.02))
            self.temporal = nn.Parameter(nn.init.trunc_normal_(torch.zeros(frames, dim), std=0.02))
        else:  # recomputed at construction, so they need not be saved
            self.register_buffer("spatial", sinusoidal_encoding_2d(height, width, dim), persistent=False)
            self.register_buffer("temporal", sinusoidal_encoding(torch.arange(frames), dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, T*H*W, D] (frame-major) -> [N, T*H*W, D]
        n, _, d = x.shape
        codes = self.temporal[:, None, :] + self.spatial[None, :, :]  # [T, H*W, D]
        return (x.view(n, self.frames, self.places, d) + codes.to(x.dtype)).view(n, -1, d)


def frames_to_places(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[N, T*P, D] (frame-major) -> [N*P, T, D]: for each place, its tokens across the frames."""
    n, _, d = x.shape
    return x.view(n, frames, -1, d).transpose(1, 2).reshape(-1, frames, d)


def places_to_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of `frames_to_places`: [N*P, T, D] -> [N, T*P, D]."""
    _, frames, d = x.shape
    return x.view(n, -1, frames, d).transpose(1, 2).reshape(n, -1, d)


class SpaceTimeBlock(nn.Module):
    """Divided space-time block: x + temporal(norm(x)), x + spatial(norm(x)), x + mlp(norm(x)).

    Args:
        dim: channels of a token.
        num_heads: attention heads (of both attentions).
        mlp_ratio: hidden channels of the MLP as a multiple of `dim`.
        cond_dim: size of the vector that modulates the layer norms (0: plain layer norm).
        kind: "dot" or "l2" attention (see `sagan.layers.transformer.MultiHeadAttention`).
        window_size: side of local spatial attention groups within a frame (0: the whole frame).
        spectral_norm: "none", "plain" or "improved" spectral norm on every projection.
    """

    def __init__(
        self, dim: int, num_heads: int = 4, mlp_ratio: float = 4.0, cond_dim: int = 0, kind: AttentionKind = "dot",
        window_size: int = 0, spectral_norm: SpectralNormMode = "none",
    ):
        super().__init__()
        self.norm_time = ModulatedLayerNorm(dim, cond_dim)
        self.temporal = MultiHeadAttention(dim, num_heads, kind, spectral_norm=spectral_norm)
        self.norm_space = ModulatedLayerNorm(dim, cond_dim)
        self.spatial = MultiHeadAttention(dim, num_heads, kind, window_size, spectral_norm=spectral_norm)
        self.norm_mlp = ModulatedLayerNorm(dim, cond_dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), spectral_norm)

    def forward(self, x: torch.Tensor, thw: tuple[int, int, int], cond: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, T*H*W, dim] (frame-major), thw = (T, H, W), cond: [N, cond_dim] or None -> [N, T*H*W, dim]
        n, length, d = x.shape
        frames, height, width = thw
        across_time = frames_to_places(self.norm_time(x, cond), frames)  # [N*H*W, T, dim]
        x = x + places_to_frames(self.temporal(across_time), n)
        within_frame = self.norm_space(x, cond).reshape(n * frames, height * width, d)  # [N*T, H*W, dim]
        x = x + self.spatial(within_frame, (height, width)).reshape(n, length, d)
        return x + self.mlp(self.norm_mlp(x, cond))


class VideoTransformerGenerator(nn.Module):
    """Transformer generator of clips from noise, with divided space-time attention.

    Args:
        image_size: frame height and width; must equal bottom_size * 2^(stages - 1) * patch_size.
        channels: frame channels.
        num_frames: frames per clip; must be divisible by `tubelet`.
        num_classes: classes to condition on; 0 makes the generator unconditional.
        z_dim: size of the noise vector (and of the class embedding).
        bottom_size: side of the first token grid of every frame.
        dims: channels of the tokens in each stage, lowest resolution first.
        depths: space-time blocks in each stage.
        num_heads: attention heads in every block; each stage's channels must be divisible by it.
        mlp_ratio: hidden channels of each MLP as a multiple of the stage's channels.
        upsample: how a stage doubles each frame's resolution: "pixel_shuffle" or "bilinear" (then a linear).
        pos_encoding: "learned" or "sinusoidal" (fixed) space-time positions, per stage.
        style_dim: size of the code of (z, y) that modulates every layer norm.
        window_size: side of the local spatial attention groups in `window_resolutions`.
        window_resolutions: stage resolutions whose blocks attend locally within a frame.
        patch_size: side of the pixel patch each final token becomes.
        tubelet: frames each final token spans (the blocks see num_frames / tubelet time steps).
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        num_frames: int = 16,
        num_classes: int = 0,
        z_dim: int = 64,
        bottom_size: int = 8,
        dims: tuple[int, ...] = (64, 32, 16),
        depths: tuple[int, ...] = (2, 1, 0),
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        upsample: Literal["pixel_shuffle", "bilinear"] = "bilinear",
        pos_encoding: Literal["learned", "sinusoidal"] = "learned",
        style_dim: int = 64,
        window_size: int = 8,
        window_resolutions: tuple[int, ...] = (),
        patch_size: int = 1,
        tubelet: int = 1,
    ):
        super().__init__()
        check_ranges(
            "VideoTransformerGenerator", image_size=(image_size, "[1, inf)"), channels=(channels, "[1, inf)"),
            num_frames=(num_frames, "[1, inf)"), num_classes=(num_classes, "[0, inf)"), z_dim=(z_dim, "[1, inf)"),
            bottom_size=(bottom_size, "[1, inf)"), dims=(dims, "[1, inf)"), depths=(depths, "[0, inf)"),
            num_heads=(num_heads, "[1, inf)"), mlp_ratio=(mlp_ratio, "(0, inf)"), style_dim=(style_dim, "[1, inf)"),
            window_size=(window_size, "[0, inf)"), window_resolutions=(window_resolutions, "[1, inf)"),
            patch_size=(patch_size, "[1, inf)"), tubelet=(tubelet, "[1, inf)"),
        )
        dims, depths = tuple(dims), tuple(depths)
        self.resolutions = [bottom_size * 2**i for i in range(len(dims))]
        _check_generator(image_size, num_frames, z_dim, dims, depths, num_heads, window_size, window_resolutions,
                         self.resolutions, patch_size, tubelet)
        if min(channels, bottom_size, style_dim) < 1 or num_classes < 0 or mlp_ratio <= 0:
            raise ValueError(
                "VideoTransformerGenerator: channels, bottom_size and style_dim must be >= 1, num_classes >= 0 and "
                f"mlp_ratio > 0, got {channels}, {bottom_size}, {style_dim}, {num_classes} and {mlp_ratio}"
            )
        self.image_size, self.channels, self.num_frames = image_size, channels, num_frames
        self.num_classes, self.z_dim = num_classes, z_dim
        self.patch_size, self.tubelet, self.steps = patch_size, tubelet, num_frames // tubelet
        self.class_embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        code_dim = 2 * z_dim if num_classes else z_dim
        self.mapping = nn.Sequential(linear(code_dim, style_dim), nn.GELU(), linear(style_dim, style_dim))
        self.stem = linear(code_dim, bottom_size * bottom_size * dims[0])
        self.upsample = nn.ModuleList(TokenUpsample(dims[i], dims[i + 1], upsample) for i in range(len(dims) - 1))
        self.pos = nn.ModuleList(
            SpaceTimePositions(self.steps, r, r, d, pos_encoding) for r, d in zip(self.resolutions, dims)
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(
                SpaceTimeBlock(dim, num_heads, mlp_ratio, style_dim, "dot", window_size if res in window_resolutions else 0)
                for _ in range(depth)
            )
            for res, dim, depth in zip(self.resolutions, dims, depths)
        )
        self.out_norm = ModulatedLayerNorm(dims[-1], style_dim)
        self.to_pixels = linear(dims[-1], tubelet * patch_size * patch_size * channels)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices or None -> [N, T, channels, image_size, image_size] in [-1, 1]
        n, frames = z.shape[0], self.steps
        code = z if self.class_embed is None else torch.cat([z, self.class_embed(y)], dim=1)
        style = self.mapping(code)
        h = self.stem(code).view(n, 1, self.resolutions[0] ** 2, -1)
        h = h.expand(-1, frames, -1, -1).reshape(n, frames * self.resolutions[0] ** 2, -1)  # [N, T*b*b, dims[0]]
        for i, (res, pos, blocks) in enumerate(zip(self.resolutions, self.pos, self.stages)):
            if i > 0:  # every frame's grid doubles: [N*T, (res/2)^2, d] -> [N*T, res^2, d']
                h = self.upsample[i - 1](h.reshape(n * frames, (res // 2) ** 2, -1), (res // 2, res // 2))
                h = h.reshape(n, frames * res * res, -1)
            h = pos(h)
            for block in blocks:
                h = block(h, (frames, res, res), style)
        pixels = torch.tanh(self.to_pixels(self.out_norm(h, style)))  # [N, T'*H'*W', tubelet*p*p*channels]
        r, p, c = self.resolutions[-1], self.patch_size, self.channels
        pixels = pixels.view(n, frames, r, r, self.tubelet, p, p, c).permute(0, 1, 4, 7, 2, 5, 3, 6)
        return pixels.reshape(n, self.num_frames, c, self.image_size, self.image_size)


def _check_generator(image_size, num_frames, z_dim, dims, depths, num_heads, window_size, window_resolutions,
                     resolutions, patch_size, tubelet) -> None:
    who = "VideoTransformerGenerator"
    if min(num_frames, z_dim, patch_size, tubelet) < 1:
        raise ValueError(f"{who}: num_frames, z_dim, patch_size and tubelet must be >= 1")
    if num_frames % tubelet:
        raise ValueError(f"{who}: tubelet {tubelet} does not divide num_frames {num_frames}")
    if not dims or len(dims) != len(depths) or min(depths) < 0:
        raise ValueError(f"{who}: dims {dims} and depths {depths} (>= 0) must name the same number (>= 1) of stages")
    if resolutions[-1] * patch_size != image_size:
        raise ValueError(
            f"{who}: bottom_size {resolutions[0]} with {len(dims)} stages and patch_size {patch_size} gives "
            f"{resolutions[-1] * patch_size}px, not {image_size}px"
        )
    bad = [d for d in dims if d % num_heads]
    if num_heads < 1 or bad:
        raise ValueError(f"{who}: stage channels {bad} are not divisible by num_heads {num_heads}")
    missing = sorted(set(window_resolutions) - set(resolutions))
    if missing:
        raise ValueError(f"{who}: window_resolutions {missing} not among the stage resolutions {resolutions}")
    if window_resolutions and (window_size < 1 or any(r % window_size for r in window_resolutions if r > window_size)):
        raise ValueError(f"{who}: window_size {window_size} must divide the window resolutions {window_resolutions}")


class VideoTransformerDiscriminator(nn.Module):
    """Spatio-temporal Vision Transformer discriminator over tubelets, with divided space-time attention.

    Args:
        image_size: frame height and width; must be divisible by `patch_size`.
        channels: frame channels.
        num_frames: frames per clip; must be divisible by `tubelet`.
        num_classes: classes for the projection head; 0 makes the discriminator unconditional.
        patch_size: side of a tubelet's patch in pixels.
        tubelet: frames a tubelet spans.
        dim: channels of a token.
        depth: space-time blocks.
        num_heads: attention heads; `dim` must be divisible by it.
        mlp_ratio: hidden channels of each MLP as a multiple of `dim`.
        pos_encoding: "learned" or "sinusoidal" (fixed) space-time positions.
        attention: "l2" (L2-distance attention with tied query/key, Lipschitz) or "dot".
        spectral_norm: "improved" (ViTGAN), "plain" or "none", on the tubelet embedding, every projection,
            the head and the class embedding.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        num_frames: int = 16,
        num_classes: int = 0,
        patch_size: int = 4,
        tubelet: int = 2,
        dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        pos_encoding: Literal["learned", "sinusoidal"] = "learned",
        attention: AttentionKind = "l2",
        spectral_norm: SpectralNormMode = "improved",
    ):
        super().__init__()
        who = "VideoTransformerDiscriminator"
        check_ranges(
            who, image_size=(image_size, "[1, inf)"), channels=(channels, "[1, inf)"), num_frames=(num_frames, "[1, inf)"),
            num_classes=(num_classes, "[0, inf)"), patch_size=(patch_size, "[1, inf)"), tubelet=(tubelet, "[1, inf)"),
            dim=(dim, "[1, inf)"), depth=(depth, "[0, inf)"), num_heads=(num_heads, "[1, inf)"),
            mlp_ratio=(mlp_ratio, "(0, inf)"),
        )
        if patch_size < 1 or image_size % patch_size:
            raise ValueError(f"{who}: patch_size {patch_size} does not divide image_size {image_size}")
        if tubelet < 1 or num_frames % tubelet:
            raise ValueError(f"{who}: tubelet {tubelet} does not divide num_frames {num_frames}")
        if depth < 0 or dim < 1 or num_heads < 1 or dim % num_heads:
            raise ValueError(f"{who}: dim {dim} must be divisible by num_heads {num_heads}, and depth >= 0")
        if channels < 1 or num_classes < 0 or mlp_ratio <= 0:
            raise ValueError(f"{who}: channels must be >= 1, num_classes >= 0 and mlp_ratio > 0, got {channels}, "
                             f"{num_classes} and {mlp_ratio}")
        self.image_size, self.channels, self.num_frames, self.num_classes = image_size, channels, num_frames, num_classes
        self.grid = (num_frames // tubelet, image_size // patch_size, image_size // patch_size)
        self.embed_tubelets = lipschitz(
            nn.Conv3d(channels, dim, (tubelet, patch_size, patch_size), stride=(tubelet, patch_size, patch_size)),
            spectral_norm,
        )
        self.pos = SpaceTimePositions(*self.grid, dim, pos_encoding)
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(dim, num_heads, mlp_ratio, kind=attention, spectral_norm=spectral_norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = linear(dim, 1, spectral_norm)
        self.embed = lipschitz(ClassProjection(num_classes, dim), spectral_norm) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, T, channels, image_size, image_size], y: [N] class indices or None -> [N] logits
        tokens = self.embed_tubelets(x.transpose(1, 2))  # [N, dim, T', H', W']
        h = self.pos(tokens.flatten(2).transpose(1, 2))  # [N, T'*H'*W', dim], frame-major
        for block in self.blocks:
            h = block(h, self.grid)
        features = self.norm(h).mean(dim=1)  # [N, dim]
        logits = self.head(features).squeeze(1)
        if self.embed is not None:
            logits = logits + self.embed.project(y, features)
        return logits


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "video-generator-16": (
        VideoTransformerGenerator,
        dict(image_size=16, channels=1, num_frames=4, z_dim=8, bottom_size=8, dims=(8, 4), depths=(1, 1),
             num_heads=2, style_dim=8),
    ),
    "video-generator-16-tubelets": (
        VideoTransformerGenerator,
        dict(image_size=16, channels=3, num_frames=4, z_dim=8, bottom_size=2, dims=(8, 4), depths=(1, 1),
             num_heads=2, style_dim=8, patch_size=4, tubelet=2),
    ),
    "video-generator-16-cond": (
        VideoTransformerGenerator,
        dict(image_size=16, channels=3, num_frames=3, num_classes=3, z_dim=8, bottom_size=4, dims=(8, 8, 4),
             depths=(1, 0, 1), num_heads=2, upsample="pixel_shuffle", pos_encoding="sinusoidal", style_dim=8,
             window_size=4, window_resolutions=(16,)),
    ),
    "video-discriminator-16": (
        VideoTransformerDiscriminator,
        dict(image_size=16, channels=1, num_frames=4, patch_size=4, tubelet=2, dim=8, depth=1, num_heads=2),
    ),
    "video-discriminator-16-cond": (
        VideoTransformerDiscriminator,
        dict(image_size=16, channels=3, num_frames=3, num_classes=3, patch_size=8, tubelet=1, dim=8, depth=2,
             num_heads=2, pos_encoding="sinusoidal", attention="dot", spectral_norm="plain"),
    ),
}
