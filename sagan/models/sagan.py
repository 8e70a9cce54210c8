"""SAGAN: a residual convolutional GAN with self-attention (Zhang et al., 2019).

Generator: z -> linear -> 4x4 map -> up-blocks (conditional batch norm when classes are given) with
self-attention at chosen resolutions -> BN-ReLU-conv -> tanh. Discriminator: down-blocks with
self-attention -> ReLU -> global sum pooling -> linear, plus a class projection (Miyato & Koyama, 2018)
when classes are given. Every convolution and linear layer of both networks is spectrally normalized.
The channel layouts follow BigGAN's for each resolution.

Non-square images: `image_size=[H, W]` takes the layout of the shorter side (32, 64, 128 or 256), and the
generator's first map is H x W scaled down as far as that side is to 4 (64 x 96: a 4 x 6 map, 4 up-blocks);
both sides must be multiples of that factor. Attention resolutions name a map's shorter side.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import ImageSize, check_image_size, check_ranges
from sagan.layers.attention import ATTENTION_BLOCKS
from sagan.layers.blocks import DiscriminatorBlock, GeneratorBlock, sn_conv
from sagan.layers.heads import ClassProjection
from sagan.layers.norm import spectral_norm
from sagan.models.growing import GrowthState, fade_in, growth_resolutions, resize, square_only, zero_term

# Multipliers of `width`: the generator's 4x4 input, then the output of each up-block.
GENERATOR_CHANNELS = {
    32: (4, 4, 4, 4),
    64: (16, 8, 4, 2, 1),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}
# Per discriminator block: (multiplier of `width`, halves the resolution).
DISCRIMINATOR_CHANNELS = {
    32: ((4, True), (4, True), (4, False), (4, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
    256: ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False)),
}


def _sizes(image_size: ImageSize, who: str) -> tuple[int, int, int]:
    """(height, width, shorter side) of a SAGAN image size; the shorter side picks the layout."""
    height, width = check_image_size(who, image_size)
    short = min(height, width)
    if short not in GENERATOR_CHANNELS:
        raise ValueError(
            f"{who}: image_size must be one of {sorted(GENERATOR_CHANNELS)} (or [height, width] with the shorter "
            f"side among them), got {list(image_size) if isinstance(image_size, (list, tuple)) else image_size}"
        )
    return height, width, short


def _check(image_size: ImageSize, attn_resolutions: tuple[int, ...], available: list[int], who: str,
           factor: int) -> None:
    height, width = check_image_size(who, image_size, factor, "the blocks' scale factor")
    missing = sorted(set(attn_resolutions) - set(available))
    if missing:
        raise ValueError(
            f"{who}: attn_resolutions {missing} not among the block resolutions {sorted(set(available))} "
            f"of a {height}x{width} model"
        )


def _check_attention(attention: str, who: str) -> None:
    if attention not in ATTENTION_BLOCKS:
        raise ValueError(f"{who}: attention must be one of {sorted(ATTENTION_BLOCKS)}, got {attention!r}")


class SAGANGenerator(nn.Module):
    """SAGAN generator.

    Args:
        image_size: output height and width: 32, 64, 128 or 256; or [height, width] whose shorter side is
            one of those and whose sides are multiples of shorter side / 4 (e.g. [64, 96]).
        channels: output image channels.
        num_classes: classes for conditional batch norm; 0 makes the generator unconditional.
        z_dim: size of the noise vector.
        width: base channel count; block channels are multiples of it (BigGAN layout).
        attn_resolutions: resolutions after whose up-block a self-attention layer sits.
        attn_heads: heads of each self-attention layer.
        channel_multipliers: overrides the layout: multipliers for the 4x4 input and each up-block.
        attention: "official" (the paper code's block: q/k C/8, v C/2, 2x2-pooled keys, no temperature)
            or "compact" (q/k/v C/8 at every position, 1/sqrt(d) temperature); see sagan/layers/attention.py.
        grow_from: progressive growing (sagan/models/growing.py) from this block resolution up to image_size:
            one to-image head per lower stage, the current stage in `growth` (None: no growing).
    """

    def __init__(
        self,
        image_size: ImageSize = 32,
        channels: int = 3,
        num_classes: int = 0,
        z_dim: int = 128,
        width: int = 64,
        attn_resolutions: tuple[int, ...] = (16,),
        attn_heads: int = 1,
        channel_multipliers: tuple[int, ...] | None = None,
        attention: Literal["official", "compact"] = "official",
        grow_from: int | None = None,
    ):
        super().__init__()
        _check_attention(attention, "SAGANGenerator")
        check_ranges(
            "SAGANGenerator", channels=(channels, "[1, inf)"), num_classes=(num_classes, "[0, inf)"),
            z_dim=(z_dim, "[1, inf)"), width=(width, "[1, inf)"), attn_resolutions=(attn_resolutions, "[1, inf)"),
            attn_heads=(attn_heads, "[1, inf)"), channel_multipliers=(channel_multipliers, "[1, inf)"),
            grow_from=(grow_from, "[4, inf)"),
        )
        height, width_px, short = _sizes(image_size, "SAGANGenerator")
        mults = tuple(channel_multipliers or GENERATOR_CHANNELS[short])
        resolutions = [4 * 2 ** (i + 1) for i in range(len(mults) - 1)]  # shorter side after each up-block
        if (resolutions or [4])[-1] != short:
            raise ValueError(f"SAGANGenerator: channel_multipliers {mults} give {(resolutions or [4])[-1]}px, not {short}px")
        _check(image_size, attn_resolutions, resolutions, "SAGANGenerator", short // 4)
        self.image_size = short if height == width_px else (height, width_px)
        self.channels, self.num_classes, self.z_dim = channels, num_classes, z_dim
        self.start_hw = (height * 4 // short, width_px * 4 // short)  # the first map: 4 x 4 for a square
        self.start_channels = mults[0] * width
        self.stem = spectral_norm(nn.Linear(z_dim, self.start_hw[0] * self.start_hw[1] * self.start_channels))
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        for i, res in enumerate(resolutions):
            self.blocks.append(GeneratorBlock(mults[i] * width, mults[i + 1] * width, num_classes))
            if res in attn_resolutions:
                self.attention[str(i)] = ATTENTION_BLOCKS[attention](mults[i + 1] * width, num_heads=attn_heads)
        self.out_norm = nn.BatchNorm2d(mults[-1] * width)
        self.out_conv = sn_conv(mults[-1] * width, channels, 3)
        self.growth, self.grow_heads = None, None
        if grow_from is not None:
            square_only(height, width_px, "SAGANGenerator")
            self.growth = GrowthState(growth_resolutions(grow_from, short, resolutions, "SAGANGenerator"))
            self.grow_heads = nn.ModuleDict({  # BN-ReLU-conv-tanh, as the full-resolution output
                str(res): nn.Sequential(nn.BatchNorm2d(mults[i + 1] * width), nn.ReLU(),
                                        sn_conv(mults[i + 1] * width, channels, 3), nn.Tanh())
                for i, res in enumerate(resolutions) if res in self.growth.resolutions[:-1]
            })

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices, [N, num_classes] class weights (a blend) or None
        #   -> [N, channels, H, W] in [-1, 1] (H, W: image_size; [N, channels, r, r] at a growing stage r)
        h = self.stem(z).view(z.shape[0], self.start_channels, *self.start_hw)
        if self.growth is not None:
            return self._grown(h, y)
        for i, block in enumerate(self.blocks):
            h = block(h, y)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))

    def _to_image(self, h: torch.Tensor, res: int) -> torch.Tensor:
        # h: [N, C, res, res] -> [N, channels, res, res]: the to-image head of resolution res
        if res == self.image_size:
            return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))
        return self.grow_heads[str(res)](h)

    def _grown(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # h: [N, C, 4, 4] -> [N, channels, r, r] at the current stage's resolution r, faded in from the last
        res, previous = self.growth.resolution, self.growth.previous
        used = res.bit_length() - 3  # blocks up to resolution res (block i outputs 4 * 2 ** (i + 1))
        before = h
        for i in range(used):
            before = h
            h = self.blocks[i](h, y)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        out = self._to_image(h, res)
        if previous is not None:
            out = fade_in(resize(self._to_image(before, previous), res), out, self.growth)
        return out + zero_term(self.stage_modules(res, unused=True))

    def stage_modules(self, res: int, unused: bool = False) -> list[nn.Module]:
        """The modules that join at stage `res` (its up-block, attention and to-image head: what starts
        with fresh optimizer state); `unused`: instead those that stage `res` does not run."""
        i = res.bit_length() - 4  # the block that outputs res
        head = [self.out_norm, self.out_conv] if res == self.image_size else [self.grow_heads[str(res)]]
        new = [self.blocks[i], *([self.attention[str(i)]] if str(i) in self.attention else []), *head]
        if not unused:
            return new
        previous = res // 2 if res != self.growth.resolutions[0] else None
        used_heads = {str(r) for r in (res, previous) if r is not None}
        later = [m for j, block in enumerate(self.blocks) if j > i
                 for m in (block, *([self.attention[str(j)]] if str(j) in self.attention else []))]
        heads = [m for r, m in self.grow_heads.items() if r not in used_heads]
        return later + heads + ([self.out_norm, self.out_conv] if res != self.image_size else [])


class SAGANDiscriminator(nn.Module):
    """SAGAN discriminator with an optional projection head for class-conditional training.

    Args:
        image_size: input height and width: 32, 64, 128 or 256; or [height, width] as for `SAGANGenerator`.
        channels: input image channels.
        num_classes: classes for the projection head; 0 makes the discriminator unconditional.
        width: base channel count; block channels are multiples of it (BigGAN layout).
        attn_resolutions: resolutions after whose down-block a self-attention layer sits.
        attn_heads: heads of each self-attention layer.
        channel_multipliers: overrides the layout's multipliers, one per block (downsampling stays).
        pack: PacGAN packing (Lin et al., 2018): D judges groups of `pack` consecutive images, stacked
            along the channels, and returns one logit per group, which penalizes a generator whose
            samples lack variety (mode collapse). Unconditional only; the batch must divide by `pack`.
        attention: "official" or "compact" self-attention block (see `SAGANGenerator`).
        grow_from: progressive growing (sagan/models/growing.py) from this block input resolution up to
            image_size: one 1x1 from-image input per lower stage, the current stage in `growth` (None: no
            growing). Larger images than the current stage's are average-pooled down to it.
    """

    def __init__(
        self,
        image_size: ImageSize = 32,
        channels: int = 3,
        num_classes: int = 0,
        width: int = 64,
        attn_resolutions: tuple[int, ...] = (16,),
        attn_heads: int = 1,
        channel_multipliers: tuple[int, ...] | None = None,
        pack: int = 1,
        attention: Literal["official", "compact"] = "official",
        grow_from: int | None = None,
    ):
        super().__init__()
        _check_attention(attention, "SAGANDiscriminator")
        check_ranges(
            "SAGANDiscriminator", channels=(channels, "[1, inf)"), num_classes=(num_classes, "[0, inf)"),
            width=(width, "[1, inf)"), attn_resolutions=(attn_resolutions, "[1, inf)"), attn_heads=(attn_heads, "[1, inf)"),
            channel_multipliers=(channel_multipliers, "[1, inf)"), pack=(pack, "[1, inf)"),
            grow_from=(grow_from, "[1, inf)"),
        )
        if pack > 1 and num_classes:
            raise ValueError(
                f"SAGANDiscriminator: packing (pack={pack}) needs an unconditional discriminator, got "
                f"num_classes={num_classes} (train with --data.use_labels=false)"
            )
        height, width_px, short = _sizes(image_size, "SAGANDiscriminator")
        layout = DISCRIMINATOR_CHANNELS[short]
        if channel_multipliers is not None:
            if len(channel_multipliers) != len(layout):
                raise ValueError(
                    f"SAGANDiscriminator: a {short}px model has {len(layout)} blocks, "
                    f"got {len(channel_multipliers)} channel_multipliers"
                )
            layout = tuple((m, down) for m, (_, down) in zip(channel_multipliers, layout))
        resolutions, res = [], short  # the shorter side after each block
        for _, down in layout:
            res = res // 2 if down else res
            resolutions.append(res)
        _check(image_size, attn_resolutions, resolutions, "SAGANDiscriminator", short // resolutions[-1])
        self.image_size = short if height == width_px else (height, width_px)
        self.channels, self.num_classes, self.pack = channels, num_classes, pack
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        in_channels, placed, block_inputs = channels * pack, set(), []
        for i, ((mult, down), res) in enumerate(zip(layout, resolutions)):
            block_inputs.append(in_channels)
            self.blocks.append(DiscriminatorBlock(in_channels, mult * width, downsample=down, first=i == 0))
            in_channels = mult * width
            if res in attn_resolutions and res not in placed:  # once per resolution, after its first block
                self.attention[str(i)] = ATTENTION_BLOCKS[attention](in_channels, num_heads=attn_heads)
                placed.add(res)
        self.linear = spectral_norm(nn.Linear(in_channels, 1))
        self.embed = spectral_norm(ClassProjection(num_classes, in_channels)) if num_classes else None
        self.growth, self.from_images = None, None
        if grow_from is not None:
            square_only(height, width_px, "SAGANDiscriminator")
            inputs = [short, *resolutions[:-1]]  # each block's input resolution
            self.growth = GrowthState(growth_resolutions(grow_from, short, inputs, "SAGANDiscriminator"))
            self._entries = {res: inputs.index(res) for res in self.growth.resolutions}  # first block at res
            self.from_images = nn.ModuleDict({
                str(res): sn_conv(channels * pack, block_inputs[self._entries[res]], 1)
                for res in self.growth.resolutions[:-1]
            })

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, channels, H, W] (H, W: image_size; growing: any size >= the stage's), y: [N] class indices
        #   or None -> [N / pack] logits
        h = x
        if self.pack > 1:
            n, c, height, width = x.shape
            if n % self.pack:
                raise ValueError(f"SAGANDiscriminator(pack={self.pack}) needs a batch divisible by {self.pack}, got {n}")
            h = x.reshape(n // self.pack, self.pack * c, height, width)  # images 0..pack-1 form group 0, ...
        h = self._blocks(h, 0, len(self.blocks)) if self.growth is None else self._grown(h)
        h = F.relu(h).sum(dim=(2, 3))  # [N, C]
        logits = self.linear(h).squeeze(1)
        if self.embed is not None:
            logits = logits + self.embed.project(y, h)
        if self.growth is not None:
            logits = logits + zero_term(self.stage_modules(self.growth.resolution, unused=True))
        return logits

    def _blocks(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        # h: [N, C, H, W] -> [N, C', H', W'] through blocks start..stop-1 and their attention
        for i in range(start, stop):
            h = self.blocks[i](h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return h

    def _grown(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C, H, W] images, H >= r -> [N, C', h, w] the last block's features: the stage r's path, faded in
        res, previous = self.growth.resolution, self.growth.previous
        x = resize(x, res)
        h = x if res == self.image_size else self.from_images[str(res)](x)
        start = self._entries[res]
        if previous is not None:
            stop = self._entries[previous]
            old = self.from_images[str(previous)](resize(x, previous))
            h, start = fade_in(old, self._blocks(h, start, stop), self.growth), stop
        return self._blocks(h, start, len(self.blocks))

    def stage_modules(self, res: int, unused: bool = False) -> list[nn.Module]:
        """The modules that join at stage `res` (its from-image input and the blocks at res: what starts
        with fresh optimizer state); `unused`: instead those that stage `res` does not run."""
        previous = res // 2 if res != self.growth.resolutions[0] else None
        start = self._entries[res]
        stop = self._entries[previous] if previous is not None else len(self.blocks)
        pick = range(0, start) if unused else range(start, stop)
        blocks = [m for i in pick
                  for m in (self.blocks[i], *([self.attention[str(i)]] if str(i) in self.attention else []))]
        if unused:
            return blocks + [m for r, m in self.from_images.items() if int(r) not in (res, previous)]
        return blocks + ([self.from_images[str(res)]] if res != self.image_size else [])


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "generator-32": (SAGANGenerator, dict(image_size=32, channels=3, z_dim=8, width=2, attn_resolutions=(16,))),
    "generator-32-cond": (
        SAGANGenerator,
        dict(image_size=32, channels=1, num_classes=3, z_dim=8, width=2, attn_resolutions=(8, 32)),
    ),
    "generator-64": (
        SAGANGenerator, dict(image_size=64, channels=3, z_dim=8, width=1, attn_resolutions=(32,), attention="compact")
    ),
    "discriminator-32": (
        SAGANDiscriminator, dict(image_size=32, channels=3, width=4, attn_resolutions=(16,), attn_heads=2)
    ),
    "discriminator-32-pack": (
        SAGANDiscriminator, dict(image_size=32, channels=3, width=4, attn_resolutions=(16,), pack=2)
    ),
    "discriminator-32-cond": (
        SAGANDiscriminator,
        dict(image_size=32, channels=1, num_classes=3, width=4, attn_resolutions=(8,)),
    ),
    "discriminator-64": (
        SAGANDiscriminator, dict(image_size=64, channels=3, width=2, attn_resolutions=(32, 8), attention="compact")
    ),
    "generator-32x48-cond": (  # non-square: a 4 x 6 first map
        SAGANGenerator, dict(image_size=(32, 48), channels=3, num_classes=3, z_dim=8, width=2, attn_resolutions=(16,))
    ),
    "discriminator-48x32": (SAGANDiscriminator, dict(image_size=(48, 32), channels=1, width=4, attn_resolutions=(16,))),
}
