"""Networks that repair damaged images: an encoder-decoder generator and an SN-PatchGAN discriminator.

`InpaintGenerator` reads a damaged image and its hole mask (1 = hole), or the damaged image alone for
blind restoration (`use_mask=False`), and returns a whole image in [-1, 1]; the LightningModule pastes the
known pixels back (compositing). Layout, for a `2^num_down` stride:

    [damaged, mask] -> gated conv 5x5 -> num_down x (gated conv stride 2, gated conv)      encoder
      -> dilated residual gated convs -> conv position encoding + masked transformer blocks  bottleneck
         (attention reads only known tokens, sagan/layers/masked_attention.py) [-> SAGAN attention]
      -> num_down x (nearest 2x up, concat the encoder's skip, 2 gated convs) -> conv -> tanh  decoder

Every layer is convolutional or works on tokens of any grid, so one network repairs any height and width
that are multiples of its `stride` (non-square too). `PatchDiscriminator` (SN-PatchGAN, Yu et al., 2019):
spectrally normalized 5x5 stride-2 convolutions over the image and the mask, one logit per patch.
"""

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import ImageSize, check_image_size, check_ranges
from sagan.layers.attention import SelfAttention2d
from sagan.layers.gated import GatedConv2d
from sagan.layers.masked_attention import MaskedTransformerBlock
from sagan.layers.norm import spectral_norm
from sagan.layers.transformer import window_partition


def _stage(in_channels: int, out_channels: int, stride: int, gated: bool) -> nn.Sequential:
    """Two 3x3 gated convolutions, the first with `stride`."""
    first = GatedConv2d(in_channels, out_channels, 3, stride, gated=gated)
    return nn.Sequential(first, GatedConv2d(out_channels, out_channels, gated=gated))


def _check_size(who: str, x: torch.Tensor, stride: int) -> None:
    if x.shape[-2] % stride or x.shape[-1] % stride:
        raise ValueError(f"{who}: height and width must be multiples of {stride}, got {tuple(x.shape[-2:])}")


class InpaintGenerator(nn.Module):
    """Encoder-decoder over [damaged image, mask] with attention over known tokens at the bottleneck.

    Args:
        image_size: training height and width, or [height, width] (multiples of `stride`); any multiple
            works at inference.
        channels: image channels.
        width: channels of the full-resolution layers; each downsampling doubles them up to
            `width * max_multiplier`.
        num_down: stride-2 stages; the bottleneck is `2^num_down` times smaller than the image.
        max_multiplier: cap of the channel multiplier.
        dilated_blocks: residual gated convolutions at the bottleneck, dilations 2, 4, 8, ...
        transformer_depth: masked transformer blocks at the bottleneck (0: none).
        num_heads: attention heads of those blocks.
        window_size: local attention windows of that many tokens a side (0: global attention).
        mlp_ratio: MLP width of the transformer blocks as a multiple of the bottleneck channels.
        sagan_attention: a SAGAN self-attention layer (over all tokens, gate starting at 0) after them.
        gated: gated convolutions (DeepFill v2); False: plain convolutions.
        use_mask: the mask is an input channel (inpainting); False for blind restoration, where the
            network gets the damaged image only and must find the damage itself.
        num_classes: classes of the data (linked from the data module); ignored: repair is unconditional.
    """

    repair = True  # the contract suite's sign of a repair network: called as net(image, mask)
    num_classes = 0  # unconditional, whatever the data's classes

    def __init__(
        self,
        image_size: ImageSize = 32,
        channels: int = 3,
        width: int = 32,
        num_down: int = 2,
        max_multiplier: int = 4,
        dilated_blocks: int = 2,
        transformer_depth: int = 2,
        num_heads: int = 4,
        window_size: int = 0,
        mlp_ratio: float = 2.0,
        sagan_attention: bool = False,
        gated: bool = True,
        use_mask: bool = True,
        num_classes: int = 0,
    ):
        super().__init__()
        at_least_one = "[1, inf)"
        check_ranges(
            "InpaintGenerator", channels=(channels, at_least_one),
            width=(width, at_least_one), num_down=(num_down, at_least_one), max_multiplier=(max_multiplier, at_least_one),
            dilated_blocks=(dilated_blocks, "[0, inf)"), transformer_depth=(transformer_depth, "[0, inf)"),
            num_heads=(num_heads, at_least_one), window_size=(window_size, "[0, inf)"), mlp_ratio=(mlp_ratio, "(0, inf)"),
            num_classes=(num_classes, "[0, inf)"),
        )
        self.channels, self.use_mask = channels, use_mask
        self.num_down, self.window_size = num_down, window_size
        self.stride = 2**num_down * max(window_size, 1)  # windows must tile the bottleneck grid
        height, width_px = check_image_size("InpaintGenerator", image_size, self.stride, "the stride")
        self.image_size = height if height == width_px else (height, width_px)
        chans = [width * min(2**i, max_multiplier) for i in range(num_down + 1)]
        dim = chans[-1]
        if transformer_depth and dim % num_heads:
            raise ValueError(f"InpaintGenerator: bottleneck channels {dim} are not divisible by num_heads {num_heads}")
        self.stem = GatedConv2d(channels + int(use_mask), chans[0], 5, gated=gated)
        self.down = nn.ModuleList(_stage(chans[i], chans[i + 1], 2, gated) for i in range(num_down))
        self.dilated = nn.ModuleList(
            GatedConv2d(dim, dim, 3, dilation=2 ** (j + 1), gated=gated) for j in range(dilated_blocks)
        )
        # a depthwise convolution as position encoding: it works on any grid, unlike a learned table
        self.position = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if transformer_depth else None
        self.transformer = nn.ModuleList(
            MaskedTransformerBlock(dim, num_heads, mlp_ratio, window_size) for _ in range(transformer_depth)
        )
        self.attention = SelfAttention2d(dim) if sagan_attention else None
        self.up = nn.ModuleList(_stage(chans[i + 1] + chans[i], chans[i], 1, gated) for i in reversed(range(num_down)))
        self.head = nn.Conv2d(chans[0], channels, 3, padding=1)

    def known_tokens(self, mask: torch.Tensor | None, n: int, hw: tuple[int, int]) -> torch.Tensor:
        """[N, H*W] bool of the bottleneck grid: a token is known when its patch holds a known pixel."""
        if mask is None or not self.use_mask:
            return torch.ones(n, hw[0] * hw[1], dtype=torch.bool, device=self.head.weight.device)
        return (F.max_pool2d(1 - mask, 2**self.num_down) > 0).flatten(1)

    def _encode(self, damaged: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        _check_size("InpaintGenerator", damaged, self.stride)
        if self.use_mask:
            if mask is None:
                raise ValueError("InpaintGenerator(use_mask=True) needs the hole mask")
            damaged = torch.cat([damaged, mask.to(damaged.dtype)], dim=1)
        h = self.stem(damaged)
        skips = [h]
        for stage in self.down:
            h = stage(h)
            skips.append(h)
        for conv in self.dilated:
            h = h + conv(h)
        if self.position is not None:
            h = h + self.position(h)
        return h, skips

    def forward(self, damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # damaged: [N, C, H, W] in [-1, 1], mask: [N, 1, H, W] (1 = hole) or None -> [N, C, H, W] in [-1, 1]
        h, skips = self._encode(damaged, mask)
        n, d, height, width = h.shape
        if self.transformer:
            tokens = h.flatten(2).transpose(1, 2)  # [N, h*w, D]
            known = self.known_tokens(mask, n, (height, width))
            for block in self.transformer:
                tokens, known = block(tokens, known, (height, width))
            h = tokens.transpose(1, 2).reshape(n, d, height, width)
        if self.attention is not None:
            h = self.attention(h)
        for stage, skip in zip(self.up, reversed(skips[:-1])):
            h = stage(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skip], dim=1))
        return torch.tanh(self.head(h))

    @torch.no_grad()
    def attention_map(self, damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """What the first masked transformer block reads: [N, L, L] head-averaged weights over the
        bottleneck grid (row: query token, column: key token; L = H*W / 4^num_down), None without one."""
        if not self.transformer:
            return None
        h, _ = self._encode(damaged, mask)
        n, _, height, width = h.shape
        tokens = h.flatten(2).transpose(1, 2)
        block = self.transformer[0]
        known = self.known_tokens(mask, n, (height, width))
        weights = block.attention.weights(block.norm1(tokens), known, (height, width))
        if not self.window_size:
            return weights
        # windows: scatter each window's [T, T] weights into the whole grid's [L, L]
        index = torch.arange(height * width, device=h.device, dtype=h.dtype).view(1, -1, 1).expand(n, -1, 1)
        index = window_partition(index, height, width, self.window_size)[..., 0].long()  # [N * windows, T]
        batch = torch.arange(n, device=h.device).repeat_interleave(index.shape[0] // n)[:, None, None]
        dense = weights.new_zeros(n, height * width, height * width)
        dense[batch, index[:, :, None], index[:, None, :]] = weights
        return dense


class PatchDiscriminator(nn.Module):
    """SN-PatchGAN: spectrally normalized 5x5 stride-2 convolutions over [image, mask], one logit per patch.

    Args:
        image_size: training height and width, or [height, width] (multiples of `stride`).
        channels: image channels.
        width: channels of the first layer; each later one doubles them up to `width * max_multiplier`.
        num_layers: stride-2 layers; the logits map is `2^num_layers` times smaller than the image.
        max_multiplier: cap of the channel multiplier.
        use_mask: the hole mask is an input channel (inpainting); False for blind restoration.
        num_classes: classes of the data (linked from the data module); ignored: repair is unconditional.
    """

    repair = True
    num_classes = 0

    def __init__(
        self, image_size: ImageSize = 32, channels: int = 3, width: int = 32, num_layers: int = 3, max_multiplier: int = 4,
        use_mask: bool = True, num_classes: int = 0,
    ):
        super().__init__()
        at_least_one = "[1, inf)"
        check_ranges(
            "PatchDiscriminator", channels=(channels, at_least_one),
            width=(width, at_least_one), num_layers=(num_layers, at_least_one),
            max_multiplier=(max_multiplier, at_least_one), num_classes=(num_classes, "[0, inf)"),
        )
        self.channels, self.use_mask = channels, use_mask
        self.stride = 2**num_layers
        height, width_px = check_image_size("PatchDiscriminator", image_size, self.stride, "the stride")
        self.image_size = height if height == width_px else (height, width_px)
        chans = [channels + int(use_mask)] + [width * min(2**i, max_multiplier) for i in range(num_layers)]
        self.convs = nn.ModuleList(
            spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 5, stride=2, padding=2)) for i in range(num_layers)
        )
        self.head = spectral_norm(nn.Conv2d(chans[-1], 1, 3, padding=1))

    def features(
        self, image: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Patch logits [N, H/stride, W/stride] and every layer's activations (for feature matching)."""
        _check_size("PatchDiscriminator", image, self.stride)
        h = image
        if self.use_mask:
            if mask is None:
                raise ValueError("PatchDiscriminator(use_mask=True) needs the hole mask")
            h = torch.cat([image, mask.to(image.dtype)], dim=1)
        activations = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            activations.append(h)
        return self.head(h).squeeze(1), activations

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # image: [N, C, H, W], mask: [N, 1, H, W] or None -> [N, H / stride, W / stride] patch logits
        return self.features(image, mask)[0]


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "inpaint-generator": (
        InpaintGenerator,
        dict(image_size=16, channels=3, width=4, num_down=2, dilated_blocks=1, transformer_depth=1, num_heads=2),
    ),
    "inpaint-generator-windows": (
        InpaintGenerator,
        dict(image_size=16, channels=1, width=4, num_down=1, transformer_depth=2, num_heads=2, window_size=2,
             sagan_attention=True, gated=False),
    ),
    "restore-generator": (
        InpaintGenerator,
        dict(image_size=16, channels=3, width=4, num_down=2, transformer_depth=1, num_heads=2, use_mask=False),
    ),
    "patch-discriminator": (PatchDiscriminator, dict(image_size=16, channels=3, width=4, num_layers=2)),
    "patch-discriminator-blind": (
        PatchDiscriminator, dict(image_size=16, channels=1, width=4, num_layers=3, use_mask=False)
    ),
    "inpaint-generator-16x24": (  # non-square training size
        InpaintGenerator,
        dict(image_size=(16, 24), channels=3, width=4, num_down=2, transformer_depth=1, num_heads=2, window_size=2),
    ),
    "patch-discriminator-16x24": (PatchDiscriminator, dict(image_size=(16, 24), channels=3, width=4, num_layers=2)),
}
