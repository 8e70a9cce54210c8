"""Sprite video generator: convolutions draw each object once, attention across time moves it.

A content + motion generator (MoCoGAN's split of the noise, Tulyakov et al., 2018) for clips of a few
objects moving over a dark background, such as moving digits. Per clip the noise holds `sprites` pairs of
a content code and a motion code.
- Content: one convolutional image generator (SAGAN's residual up-blocks, `sagan/layers/blocks.py`) draws
  every object once, as a square sprite with values in [0, 1] (0: empty), 4 * 2^(blocks) pixels a side;
  with `sprite_size` the drawing is then scaled (bilinear) to that side, so an object can be drawn at
  its data's native resolution and shown at the size it moves at (moving digits: 8x8 drawn, 14x14 shown).
- Motion: each motion code gives its sprite a start (a place in the frame) and a velocity (pixels per
  frame); the path `start + velocity * t` is folded into the frame (reflected at its edges, a bounce).
  Both start out uniform over the frame and over the velocities up to `max_speed` (the motion code's
  normal CDF), and a map of the code (near zero at first) learns to reshape them. A transformer then attends
  across the frames and sprites of the clip (one token per sprite and frame: its motion code, its
  place, a time code and a sprite code) and adds a learned displacement to every place (near zero at
  the start), so paths can bend where straight lines and bounces do not explain the data.
- Frames: every sprite is warped to its place in every frame by `grid_sample` (bilinear, sub-pixel
  places, or with `whole_pixels` places rounded to whole pixels in the forward pass and gradients passed
  straight through the rounding, so a sprite is copied unblurred as objects rendered at pixel places are);
  where sprites overlap the brighter wins (the maximum), then [0, 1] -> [-1, 1].
The same sprite is in every frame, so the frames cannot flicker and an image learnt once is drawn in all
of them; motion is a few numbers per sprite that the discriminator's clip head judges.
"""

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import check_ranges
from sagan.layers.blocks import GeneratorBlock, check_norm, sn_conv
from sagan.layers.norm import GroupNorm2d
from sagan.layers.transformer import TransformerBlock, linear


def fold(path: torch.Tensor) -> torch.Tensor:
    """Positions reflected into [0, 1]: a triangle wave of period 2 (a bounce at 0 and at 1)."""
    path = torch.remainder(path, 2.0)
    return torch.where(path > 1.0, 2.0 - path, path)


class VideoSpriteGenerator(nn.Module):
    """Clips of `sprites` objects, each drawn once by convolutions and moved by a path that attention bends.

    Args:
        image_size: frame height and width; larger than `sprite_size`.
        channels: frame channels.
        num_frames: frames per clip.
        num_classes: classes for the sprite generator's conditional batch norms; 0: unconditional.
        sprites: objects per clip.
        content_dim: content code per sprite (what it shows).
        motion_dim: motion code per sprite (where it starts and how it moves); at least 4.
        width: base channels of the sprite generator; its blocks have `channel_multipliers` times this.
        channel_multipliers: channels of the 4x4 map and of each up-block (each doubles the side), as
            multiples of `width`; the sprite side is 4 * 2^(len - 1).
        max_speed: the largest initial speed along each axis, as a fraction of the frame side per frame.
        latent_dim: channels of the motion transformer's tokens.
        latent_depth: transformer blocks across the clip's frames and sprites (0: straight paths and bounces).
        num_heads: attention heads of those blocks; `latent_dim` must be divisible by it.
        sprite_size: side of the sprites placed in the frames; the drawing (4 * 2^(len(channel_multipliers) - 1)
            pixels) is scaled to it, bilinear. None: the drawing's side.
        whole_pixels: round every place to a whole pixel (straight-through gradient): sprites are pasted, not
            resampled, and keep their sharpness in every frame; False: bilinear sub-pixel places.
        norm: the drawing's normalization: "batch" (SAGAN's) or "group" (per-sample statistics, no running
            statistics: training and sampling draw alike); "group" is unconditional only.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        num_frames: int = 16,
        num_classes: int = 0,
        sprites: int = 2,
        content_dim: int = 32,
        motion_dim: int = 8,
        width: int = 32,
        channel_multipliers: tuple[int, ...] = (4, 2, 1),
        max_speed: float = 0.08,
        latent_dim: int = 64,
        latent_depth: int = 2,
        num_heads: int = 4,
        sprite_size: int | None = None,
        whole_pixels: bool = False,
        norm: str = "batch",
    ):
        super().__init__()
        who = "VideoSpriteGenerator"
        check_ranges(
            who, image_size=(image_size, "[2, inf)"), channels=(channels, "[1, inf)"),
            num_frames=(num_frames, "[1, inf)"), num_classes=(num_classes, "[0, inf)"), sprites=(sprites, "[1, inf)"),
            content_dim=(content_dim, "[1, inf)"), motion_dim=(motion_dim, "[4, inf)"), width=(width, "[1, inf)"),
            channel_multipliers=(channel_multipliers, "[1, inf)"), max_speed=(max_speed, "(0, 1]"),
            latent_dim=(latent_dim, "[1, inf)"), latent_depth=(latent_depth, "[0, inf)"),
            num_heads=(num_heads, "[1, inf)"), sprite_size=(sprite_size, "[1, inf)"),
        )
        check_norm(who, norm, num_classes)
        mults = tuple(channel_multipliers)
        self.drawn_size = 4 * 2 ** (len(mults) - 1)
        if len(mults) < 2:
            raise ValueError(f"{who}: channel_multipliers {mults} need at least two entries (one up-block)")
        sprite_size = sprite_size or self.drawn_size
        if sprite_size >= image_size:
            raise ValueError(f"{who}: {sprite_size}px sprites (sprite_size, or channel_multipliers {mults}) must be "
                             f"smaller than the {image_size}px frames")
        if latent_dim % num_heads:
            raise ValueError(f"{who}: latent_dim {latent_dim} must be divisible by num_heads {num_heads}")
        self.image_size, self.channels, self.num_frames, self.num_classes = image_size, channels, num_frames, num_classes
        self.sprites, self.content_dim, self.motion_dim = sprites, content_dim, motion_dim
        self.sprite_size, self.max_speed, self.whole_pixels = sprite_size, max_speed, whole_pixels
        self.z_dim = sprites * (content_dim + motion_dim)
        # content -> sprite (SAGAN's generator blocks)
        self.start_channels = mults[0] * width
        # no spectral norm here: it would cap the content code's gain at 1 while the bias (a template drawn
        # whatever the code) grows freely; every sprite came out the same (pilots sprites 1-4)
        self.stem = linear(content_dim, 16 * self.start_channels)
        self.blocks = nn.ModuleList(
            GeneratorBlock(mults[i] * width, mults[i + 1] * width, num_classes, norm) for i in range(len(mults) - 1)
        )
        self.out_norm = nn.BatchNorm2d(mults[-1] * width) if norm == "batch" else GroupNorm2d(mults[-1] * width)
        self.out_conv = sn_conv(mults[-1] * width, channels, 3)
        # motion code -> start and velocity (uniform at first), then attention across frames and sprites
        self.to_motion = nn.Sequential(linear(motion_dim, latent_dim), nn.ReLU(), linear(latent_dim, 4))
        nn.init.normal_(self.to_motion[-1].weight, std=1e-3)  # near zero: the uniform start and velocity
        self.register_buffer("steps", torch.arange(num_frames, dtype=torch.float32), persistent=False)
        self.latent_blocks = nn.ModuleList(TransformerBlock(latent_dim, num_heads, 2.0) for _ in range(latent_depth))
        if latent_depth:
            self.to_tokens = linear(motion_dim + 2, latent_dim)
            self.time = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_frames, latent_dim), std=0.02))
            self.sprite_code = nn.Parameter(nn.init.trunc_normal_(torch.zeros(sprites, latent_dim), std=0.02))
            self.to_offset = nn.Sequential(nn.LayerNorm(latent_dim), linear(latent_dim, 2))
            nn.init.normal_(self.to_offset[-1].weight, std=1e-3)  # near zero: straight paths and bounces at first

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [N, z_dim] -> content codes [N, sprites, content_dim], motion codes [N, sprites, motion_dim]."""
        codes = z.view(z.shape[0], self.sprites, self.content_dim + self.motion_dim)
        return codes[..., : self.content_dim], codes[..., self.content_dim :]

    def draw(self, content: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Sprites of content codes [M, content_dim] (classes [M]) -> [M, channels, sprite_size, sprite_size] in [0, 1]."""
        h = self.stem(content).view(len(content), self.start_channels, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        sprites = torch.sigmoid(self.out_conv(F.relu(self.out_norm(h))))
        if self.sprite_size != self.drawn_size:
            sprites = F.interpolate(sprites, size=(self.sprite_size,) * 2, mode="bilinear", align_corners=False)
        return sprites

    def places(self, motion: torch.Tensor) -> torch.Tensor:
        """Top-left corners of the sprites: motion codes [N, S, motion_dim] -> [N, S, T, 2] (row, column),
        as fractions of the free range (0: at the top or left edge, 1: at the bottom or right edge)."""
        n, s, _ = motion.shape
        normal = torch.distributions.Normal(0.0, 1.0)
        raw = motion[..., :4] + self.to_motion(motion)  # [N, S, 4]: start (2), velocity (2)
        start = normal.cdf(raw[..., :2])
        free = self.image_size - self.sprite_size
        velocity = (2 * normal.cdf(raw[..., 2:]) - 1) * self.max_speed * self.image_size / free  # range per frame
        path = fold(start[:, :, None] + velocity[:, :, None] * self.steps[:, None])  # [N, S, T, 2]
        if not self.latent_blocks:
            return path
        tokens = torch.cat([motion[:, :, None].expand(-1, -1, self.num_frames, -1), path], dim=-1)
        tokens = self.to_tokens(tokens) + self.time.to(motion.dtype) + self.sprite_code[:, None].to(motion.dtype)
        tokens = tokens.view(n, s * self.num_frames, -1)  # [N, S*T, latent_dim]: attention across frames and sprites
        for block in self.latent_blocks:
            tokens = block(tokens)
        return path + self.to_offset(tokens).view(n, s, self.num_frames, 2)

    def place(self, sprites: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
        """Sprites [M, C, s, s] warped into frames at corners [M, T, 2] (free-range fractions)
        -> [M, T, C, image_size, image_size], 0 outside the sprite."""
        m, t = corners.shape[:2]
        size, s = self.image_size, self.sprite_size
        pixels = corners * (size - s)  # [M, T, 2] top-left in pixels
        if self.whole_pixels:  # rounded forward, the identity backward (straight-through)
            pixels = pixels + (pixels.round() - pixels).detach()
        grid = torch.arange(size, dtype=sprites.dtype, device=sprites.device) + 0.5
        rows = (grid - pixels[..., 0:1]) * (2 / s) - 1  # [M, T, size]: sprite coordinates (align_corners=False)
        cols = (grid - pixels[..., 1:2]) * (2 / s) - 1
        xy = torch.stack(torch.broadcast_tensors(cols[:, :, None, :], rows[:, :, :, None]), dim=-1)
        frames = F.grid_sample(sprites, xy.reshape(m, t * size, size, 2), mode="bilinear", padding_mode="zeros",
                               align_corners=False)  # [M, C, T*size, size]
        return frames.view(m, -1, t, size, size).transpose(1, 2)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices or None -> [N, T, channels, image_size, image_size] in [-1, 1]
        n, s = z.shape[0], self.sprites
        content, motion = self.split(z)
        labels = y.repeat_interleave(s) if y is not None and self.num_classes else None
        sprites = self.draw(content.reshape(n * s, -1), labels)  # [N*S, C, s, s]
        frames = self.place(sprites, self.places(motion).reshape(n * s, self.num_frames, 2))
        frames = frames.view(n, s, *frames.shape[1:]).amax(dim=1)  # [N, T, C, H, W]: the brighter wins
        return frames * 2 - 1


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "sprite-generator-16": (
        VideoSpriteGenerator,
        dict(image_size=16, channels=1, num_frames=4, sprites=2, content_dim=8, motion_dim=4, width=4,
             channel_multipliers=(2, 1), latent_dim=8, latent_depth=1, num_heads=2),
    ),
    "sprite-generator-16-cond": (
        VideoSpriteGenerator,
        dict(image_size=16, channels=3, num_frames=3, num_classes=3, sprites=1, content_dim=6, motion_dim=5,
             width=4, channel_multipliers=(2, 1), max_speed=0.2, latent_depth=0),
    ),
    "sprite-generator-16-group": (
        VideoSpriteGenerator,
        dict(image_size=16, channels=1, num_frames=4, sprites=2, content_dim=8, motion_dim=4, width=4,
             channel_multipliers=(2, 1), latent_dim=8, latent_depth=1, num_heads=2, norm="group"),
    ),
    "sprite-generator-16-whole": (
        VideoSpriteGenerator,
        dict(image_size=16, channels=1, num_frames=4, sprites=2, content_dim=8, motion_dim=4, width=4,
             channel_multipliers=(2, 1), latent_dim=8, latent_depth=1, num_heads=2, whole_pixels=True),
    ),
}
