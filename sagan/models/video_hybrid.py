"""Hybrid video GAN: convolutional frames with attention across time, and a frame + clip discriminator.

Self-attention combined with convolutions: convolutions draw and judge each frame (they learn image
shapes fast), attention links the frames (motion).

Generator (content and motion codes as in MoCoGAN, Tulyakov et al., 2018): the noise is split into a
content code (what the clip shows) and a motion code (how it moves). One token per frame: a linear map of
the whole noise, plus a velocity (a linear map of the motion code) times the frame's time (from -1 at the
first frame to 1 at the last), plus a learned code of the frame's time step. The motion code thus moves
the frames' codes along a straight line from the start; transformer blocks that attend across the frames
bend it (bounces, turns): a trajectory of per-frame codes. Each frame's code, with the content code beside it,
becomes a `bottom_size`^2 feature map that convolutions upsample (batch norm, ReLU, nearest x2, 3x3
convolution) to the frame; at the resolutions in `temporal_resolutions` the frames' feature maps then
attend across time, every place with the same place in the other frames. Frames are made with the
same convolutions, so an image learnt in one frame is drawn in all of them.

Discriminator (a per-frame image discriminator beside a clip discriminator, MoCoGAN and DIGAN): a shared
convolutional stem (spectrally normalized 4x4 stride-2 convolutions, leaky ReLU) turns every frame into a
feature map; a frame head gives each frame a logit (are these digits?), and a clip head, a space-time
convolution over the features and their change from each frame to the next (halving time and space),
then divided space-time attention blocks (L2 attention, spectral norm), gives the clip a logit (does it
move like a real clip?). The output is the clip logit plus
`frame_weight` times the mean of the frame logits, one logit per clip like every discriminator here.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import check_ranges
from sagan.layers.norm import spectral_norm
from sagan.layers.transformer import MultiHeadAttention, SpectralNormMode, TransformerBlock, linear
from sagan.models.video_transformer import SpaceTimeBlock, SpaceTimePositions


class TemporalAttention(nn.Module):
    """Residual attention across frames at every place of a stack of frame feature maps.

    x + attention(norm(x + time code)), where each place's tokens are its channels in the T frames.

    Args:
        channels: channels of the feature maps.
        frames: frames per clip (T).
        num_heads: attention heads; `channels` must be divisible by it.
        kind: "dot" or "l2" attention.
        spectral_norm: "none", "plain" or "improved" spectral norm on the projections.
    """

    def __init__(self, channels: int, frames: int, num_heads: int = 4, kind: Literal["dot", "l2"] = "dot",
                 spectral_norm: SpectralNormMode = "none"):
        super().__init__()
        check_ranges("TemporalAttention", channels=(channels, "[1, inf)"), frames=(frames, "[1, inf)"),
                     num_heads=(num_heads, "[1, inf)"))
        self.frames = frames
        self.time = nn.Parameter(nn.init.trunc_normal_(torch.zeros(frames, channels), std=0.02))
        self.norm = nn.LayerNorm(channels)
        self.attention = MultiHeadAttention(channels, num_heads, kind, spectral_norm=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N*T, C, H, W] (clip-major) -> [N*T, C, H, W]
        nt, c, h, w = x.shape
        n = nt // self.frames
        tokens = x.view(n, self.frames, c, h * w).permute(0, 3, 1, 2).reshape(n * h * w, self.frames, c)
        tokens = tokens + self.attention(self.norm(tokens + self.time.to(x.dtype)))
        return tokens.view(n, h * w, self.frames, c).permute(0, 2, 3, 1).reshape(nt, c, h, w)


class VideoHybridGenerator(nn.Module):
    """Clips from noise: a trajectory of frame codes by attention across time, frames by convolutions.

    Args:
        image_size: frame height and width; must equal bottom_size * 2^len(dims[1:]).
        channels: frame channels.
        num_frames: frames per clip.
        num_classes: classes to condition on (an embedding added to the frame tokens); 0: unconditional.
        z_dim: size of the noise vector: the content code and, after it, the motion code.
        motion_dim: size of the motion code (the last `motion_dim` entries of z); less than `z_dim`.
        latent_dim: channels of the per-frame tokens.
        latent_depth: transformer blocks across the frames' tokens.
        num_heads: attention heads of every attention (latent_dim and the temporal resolutions' channels
            must be divisible by it).
        bottom_size: side of each frame's first feature map.
        dims: channels of the feature maps, lowest resolution first; each further entry doubles the side.
        temporal_resolutions: feature-map sides at which the frames attend across time.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        num_frames: int = 16,
        num_classes: int = 0,
        z_dim: int = 64,
        motion_dim: int = 16,
        latent_dim: int = 64,
        latent_depth: int = 2,
        num_heads: int = 4,
        bottom_size: int = 4,
        dims: tuple[int, ...] = (128, 64, 32, 16),
        temporal_resolutions: tuple[int, ...] = (4, 8),
    ):
        super().__init__()
        who = "VideoHybridGenerator"
        check_ranges(
            who, image_size=(image_size, "[1, inf)"), channels=(channels, "[1, inf)"),
            num_frames=(num_frames, "[1, inf)"), num_classes=(num_classes, "[0, inf)"), z_dim=(z_dim, "[2, inf)"),
            motion_dim=(motion_dim, f"[1, {z_dim})"), latent_dim=(latent_dim, "[1, inf)"),
            latent_depth=(latent_depth, "[0, inf)"), num_heads=(num_heads, "[1, inf)"),
            bottom_size=(bottom_size, "[1, inf)"), dims=(dims, "[1, inf)"),
            temporal_resolutions=(temporal_resolutions, "[1, inf)"),
        )
        dims = tuple(dims)
        resolutions = [bottom_size * 2**i for i in range(len(dims))]
        if not dims or resolutions[-1] != image_size:
            raise ValueError(f"{who}: bottom_size {bottom_size} doubled {len(dims) - 1} times gives "
                             f"{resolutions[-1] if dims else 0}px, not {image_size}px")
        missing = sorted(set(temporal_resolutions) - set(resolutions))
        if missing:
            raise ValueError(f"{who}: temporal_resolutions {missing} not among the feature-map sides {resolutions}")
        bad = [d for r, d in zip(resolutions, dims) if r in temporal_resolutions and d % num_heads]
        if latent_dim % num_heads or bad:
            raise ValueError(f"{who}: latent_dim {latent_dim} and the temporal stages' channels {bad} must be "
                             f"divisible by num_heads {num_heads}")
        self.image_size, self.channels, self.num_frames = image_size, channels, num_frames
        self.num_classes, self.z_dim, self.motion_dim = num_classes, z_dim, motion_dim
        self.bottom_size, self.resolutions = bottom_size, resolutions
        content_dim = z_dim - motion_dim
        self.class_embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.to_tokens = linear(z_dim, latent_dim)
        self.to_velocity = linear(motion_dim, latent_dim)
        self.register_buffer("ramp", torch.linspace(-1.0, 1.0, num_frames), persistent=False)  # time, centred
        self.time = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_frames, latent_dim), std=0.02))
        self.latent_blocks = nn.ModuleList(TransformerBlock(latent_dim, num_heads, 2.0) for _ in range(latent_depth))
        self.latent_norm = nn.LayerNorm(latent_dim)
        self.stem = linear(latent_dim + content_dim, bottom_size * bottom_size * dims[0])
        self.norms = nn.ModuleList(nn.BatchNorm2d(d) for d in dims)
        self.convs = nn.ModuleList(nn.Conv2d(dims[i], dims[i + 1], 3, padding=1) for i in range(len(dims) - 1))
        self.temporal = nn.ModuleDict(
            {str(r): TemporalAttention(d, num_frames, num_heads) for r, d in zip(resolutions, dims) if r in temporal_resolutions}
        )
        self.to_pixels = nn.Conv2d(dims[-1], channels, 3, padding=1)

    def frame_codes(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The per-frame codes: z [N, z_dim] (and classes [N]) -> [N, T, latent_dim]."""
        velocity = self.to_velocity(z[:, self.z_dim - self.motion_dim :])  # [N, latent_dim]
        tokens = self.to_tokens(z)[:, None] + self.ramp[:, None] * velocity[:, None] + self.time.to(z.dtype)
        if self.class_embed is not None:
            tokens = tokens + self.class_embed(y)[:, None]
        for block in self.latent_blocks:
            tokens = block(tokens)
        return self.latent_norm(tokens)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices or None -> [N, T, channels, image_size, image_size] in [-1, 1]
        n, t, b = z.shape[0], self.num_frames, self.bottom_size
        codes = self.frame_codes(z, y)  # [N, T, latent_dim]
        content = z[:, None, : self.z_dim - self.motion_dim].expand(-1, t, -1)
        h = self.stem(torch.cat([codes, content], dim=2)).view(n * t, -1, b, b)  # [N*T, dims[0], b, b]
        for i, res in enumerate(self.resolutions):
            if i > 0:
                h = self.convs[i - 1](F.interpolate(F.relu(self.norms[i - 1](h)), scale_factor=2.0, mode="nearest"))
            if str(res) in self.temporal:
                h = self.temporal[str(res)](h)
        pixels = torch.tanh(self.to_pixels(F.relu(self.norms[-1](h))))  # [N*T, channels, H, W]
        return pixels.view(n, t, self.channels, self.image_size, self.image_size)


def _sn(module: nn.Module, mode: SpectralNormMode) -> nn.Module:
    return spectral_norm(module) if mode != "none" else module


class VideoHybridDiscriminator(nn.Module):
    """Judges every frame (a convolutional image discriminator) and the clip (space-time attention).

    Args:
        image_size: frame height and width; a power of two times 4, at least 16.
        channels: frame channels.
        num_frames: frames per clip; even.
        num_classes: classes for the projection head of the clip logit; 0: unconditional.
        dims: channels of the stem's stride-2 convolutions (each halves the side), then of the frame head's
            and of the clip head's features.
        depth: divided space-time attention blocks of the clip head.
        num_heads: attention heads of those blocks; the clip head's channels must be divisible by it.
        frame_weight: weight of the mean frame logit added to the clip logit.
        differences: the clip head also sees the change of the stem's features from each frame to the next
            (the first frame's change is zero), so a still or flickering clip stands out from the start.
        spectral_norm: "plain" (every convolution and projection) or "none".
        batch_std: the frame head also sees, as one more feature map, how much the stem's features vary
            across the clips of the batch at each frame (the minibatch standard deviation of ProGAN), so a
            generator that draws the same thing in every clip stands out.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        num_frames: int = 16,
        num_classes: int = 0,
        dims: tuple[int, ...] = (32, 64, 128),
        depth: int = 1,
        num_heads: int = 4,
        frame_weight: float = 1.0,
        differences: bool = False,
        spectral_norm: Literal["plain", "none"] = "plain",
        batch_std: bool = False,
    ):
        super().__init__()
        who = "VideoHybridDiscriminator"
        check_ranges(
            who, image_size=(image_size, "[16, inf)"), channels=(channels, "[1, inf)"),
            num_frames=(num_frames, "[2, inf)"), num_classes=(num_classes, "[0, inf)"), dims=(dims, "[1, inf)"),
            depth=(depth, "[0, inf)"), num_heads=(num_heads, "[1, inf)"), frame_weight=(frame_weight, "[0, inf)"),
        )
        dims = tuple(dims)
        if len(dims) < 2 or image_size % 2 ** len(dims) or image_size >> len(dims) < 2:
            raise ValueError(f"{who}: {len(dims) - 1} stem convolutions and a head halving {image_size}px frames must "
                             f"leave at least 2x2 maps (dims {dims})")
        if num_frames % 2:
            raise ValueError(f"{who}: num_frames must be even (the clip head halves time), got {num_frames}")
        if dims[-1] % num_heads:
            raise ValueError(f"{who}: the clip head's channels {dims[-1]} must be divisible by num_heads {num_heads}")
        if spectral_norm not in ("plain", "none"):
            raise ValueError(f"{who}: spectral_norm must be 'plain' or 'none', got {spectral_norm!r}")
        self.image_size, self.channels, self.num_frames, self.num_classes = image_size, channels, num_frames, num_classes
        self.frame_weight, self.differences, self.batch_std = frame_weight, differences, batch_std
        stem, c = [], channels
        for d in dims[:-1]:
            stem += [_sn(nn.Conv2d(c, d, 4, stride=2, padding=1), spectral_norm), nn.LeakyReLU(0.2)]
            c = d
        self.stem = nn.Sequential(*stem)
        side = image_size >> len(dims)  # after the head's own halving
        self.frame_head = nn.Sequential(
            _sn(nn.Conv2d(c + batch_std, dims[-1], 4, stride=2, padding=1), spectral_norm), nn.LeakyReLU(0.2), nn.Flatten(),
            _sn(nn.Linear(dims[-1] * side * side, 1), spectral_norm),
        )
        clip_in = 2 * c if differences else c
        self.clip_conv = _sn(nn.Conv3d(clip_in, dims[-1], (4, 4, 4), stride=2, padding=1), spectral_norm)
        sn_mode = "plain" if spectral_norm == "plain" else "none"
        self.grid = (num_frames // 2, side, side)
        self.pos = SpaceTimePositions(*self.grid, dims[-1], "learned")
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(dims[-1], num_heads, 2.0, kind="l2", spectral_norm=sn_mode) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dims[-1])
        self.clip_head = linear(dims[-1], 1, sn_mode)
        self.embed = _sn(nn.Embedding(num_classes, dims[-1]), spectral_norm) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, T, channels, image_size, image_size], y: [N] class indices or None -> [N] logits
        n, t = x.shape[:2]
        maps = self.stem(x.flatten(0, 1))  # [N*T, c, s, s]
        maps = maps.view(n, t, *maps.shape[1:])  # [N, T, c, s, s]
        frame_maps = maps
        if self.batch_std:  # one more map: the features' spread across the batch's clips, per frame
            spread = maps.std(dim=0, unbiased=False).mean(dim=(1, 2, 3))  # [T]
            frame_maps = torch.cat([maps, spread.view(1, t, 1, 1, 1).expand(n, t, 1, *maps.shape[3:])], dim=2)
        frame_logits = self.frame_head(frame_maps.flatten(0, 1)).view(n, t)
        if self.differences:  # each frame's change from the one before (none for the first)
            maps = torch.cat([maps, F.pad(maps[:, 1:] - maps[:, :-1], (0, 0, 0, 0, 0, 0, 1, 0))], dim=2)
        clip = F.leaky_relu(self.clip_conv(maps.transpose(1, 2)), 0.2)  # [N, d, T/2, s/2, s/2]
        h = self.pos(clip.flatten(2).transpose(1, 2))  # [N, T/2 * (s/2)^2, d], frame-major
        for block in self.blocks:
            h = block(h, self.grid)
        features = self.norm(h).mean(dim=1)  # [N, d]
        logits = self.clip_head(features).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(y) * features).sum(dim=1)
        return logits + self.frame_weight * frame_logits.mean(1)


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "hybrid-generator-16": (
        VideoHybridGenerator,
        dict(image_size=16, channels=1, num_frames=4, z_dim=8, motion_dim=4, latent_dim=8, latent_depth=1,
             num_heads=2, bottom_size=4, dims=(8, 8, 4), temporal_resolutions=(4, 8)),
    ),
    "hybrid-generator-16-cond": (
        VideoHybridGenerator,
        dict(image_size=16, channels=3, num_frames=3, num_classes=3, z_dim=8, motion_dim=2, latent_dim=8,
             latent_depth=0, num_heads=2, bottom_size=8, dims=(8, 4), temporal_resolutions=(16,)),
    ),
    "hybrid-discriminator-16": (
        VideoHybridDiscriminator,
        dict(image_size=16, channels=1, num_frames=4, dims=(8, 8), depth=1, num_heads=2, differences=True),
    ),
    "hybrid-discriminator-16-cond": (
        VideoHybridDiscriminator,
        dict(image_size=16, channels=3, num_frames=2, num_classes=3, dims=(4, 8, 8), depth=0, num_heads=2,
             frame_weight=0.5, differences=False, spectral_norm="none", batch_std=True),
    ),
}
