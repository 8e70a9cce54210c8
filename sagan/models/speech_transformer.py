"""A Transformer GAN for short speech clips: a transformer over STFT frames with a fixed inverse STFT, against
multi-scale waveform discriminators with attention over time.

Generator: z (with a class embedding when conditional) -> linear -> `bottom_frames` tokens -> stages of
pre-norm transformer blocks with global attention over time, the number of frames doubling between
stages -> a linear map of each token to the real and imaginary parts of one STFT frame -> a fixed inverse
STFT (weighted overlap-add with a Hann window, `sagan.layers.stft`) -> tanh. Frame t is centered on
sample t * hop_length, so `num_samples / hop_length` tokens make the clip. Self-modulated layer norm
carries a code of the noise and the class into every block, as in TransGAN. The spectral output keeps
neighbouring frames consistent by construction (the windows overlap by 75%), where a generator that emits
samples patch by patch would click at every patch border (iSTFTNet and Vocos make the same choice).

Discriminator: MelGAN's multi-scale idea (Kumar et al., 2019) with attention. The same architecture
judges the waveform at `scales` resolutions (each one averaged down by 2 from the previous); each sub-
discriminator is a 1-D convolution stack that turns the waveform into tokens (stride 4 per layer,
grouped convolutions as in MelGAN), then transformer blocks attend over those tokens (the whole clip,
tens of milliseconds per token), then mean pooling, a linear logit and a projection term for the class
(Miyato & Koyama, 2018). Its logit is the mean of the sub-discriminators' logits. Spectral norm on every
weight (plain or ViTGAN's improved variant).
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import check_ranges
from sagan.layers.heads import ClassProjection
from sagan.layers.norm import ModulatedLayerNorm
from sagan.layers.position import PositionalEncoding2d
from sagan.layers.stft import InverseSTFT
from sagan.layers.transformer import AttentionKind, SpectralNormMode, TransformerBlock, linear, lipschitz


class FrameUpsample(nn.Module):
    """Doubles the number of tokens of a sequence (linear interpolation in time), then maps the channels.

    Args:
        in_dim: channels of the input tokens.
        out_dim: channels of the output tokens.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, T, in_dim] -> [N, 2T, out_dim]
        x = F.interpolate(x.transpose(1, 2), scale_factor=2.0, mode="linear", align_corners=False)
        return self.proj(x.transpose(1, 2))


class SpeechTransformerGenerator(nn.Module):
    """Transformer generator of waveforms through STFT frames.

    Args:
        num_samples: samples of a generated clip; must equal hop_length * bottom_frames * 2^(stages - 1).
        sample_rate: samples per second of the clips (a fact of the data, kept for writing them out).
        num_classes: classes to condition on; 0 makes the generator unconditional.
        z_dim: size of the noise vector (and of the class embedding).
        n_fft: window and DFT size of the inverse STFT.
        hop_length: samples between frames (at most n_fft / 2).
        bottom_frames: tokens of the first stage.
        dims: channels of the tokens in each stage, fewest frames first.
        depths: transformer blocks in each stage.
        num_heads: attention heads in every block; each stage's channels must be divisible by it.
        mlp_ratio: hidden channels of each MLP as a multiple of the stage's channels.
        pos_encoding: "learned" (a table per stage) or "sinusoidal" (fixed).
        style_dim: size of the code of noise and class that modulates every layer norm.
        spectrum: what each token gives for its frame: "complex" (real and imaginary parts) or "polar" (a log
            magnitude, clamped to 80 dB above full scale, and a phase: Vocos' parametrization, in which
            silence is a large negative number rather than two exact zeros).
    """

    def __init__(
        self,
        num_samples: int = 8192,
        sample_rate: int = 8000,
        num_classes: int = 0,
        z_dim: int = 64,
        n_fft: int = 256,
        hop_length: int = 64,
        bottom_frames: int = 16,
        dims: tuple[int, ...] = (128, 128, 64, 64),
        depths: tuple[int, ...] = (2, 2, 1, 1),
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        pos_encoding: Literal["learned", "sinusoidal"] = "learned",
        style_dim: int = 64,
        spectrum: Literal["complex", "polar"] = "complex",
    ):
        super().__init__()
        dims, depths = tuple(dims), tuple(depths)
        who = "SpeechTransformerGenerator"
        check_ranges(
            who, num_samples=(num_samples, "[1, inf)"), sample_rate=(sample_rate, "[1, inf)"),
            num_classes=(num_classes, "[0, inf)"), z_dim=(z_dim, "[1, inf)"), n_fft=(n_fft, "[2, inf)"),
            hop_length=(hop_length, "[1, inf)"), bottom_frames=(bottom_frames, "[1, inf)"), dims=(dims, "[1, inf)"),
            depths=(depths, "[0, inf)"), num_heads=(num_heads, "[1, inf)"), mlp_ratio=(mlp_ratio, "(0, inf)"),
            style_dim=(style_dim, "[1, inf)"),
        )
        if not dims or len(dims) != len(depths):
            raise ValueError(f"{who}: dims {dims} and depths {depths} must name the same number (>= 1) of stages")
        if min(z_dim, bottom_frames, style_dim, num_heads) < 1 or num_classes < 0 or mlp_ratio <= 0:
            raise ValueError(f"{who}: z_dim, bottom_frames, style_dim, num_heads must be >= 1, num_classes >= 0, "
                             f"mlp_ratio > 0")
        self.frames = [bottom_frames * 2**i for i in range(len(dims))]
        if hop_length * self.frames[-1] != num_samples:
            raise ValueError(f"{who}: hop_length {hop_length} x {self.frames[-1]} frames ({bottom_frames} doubled "
                             f"{len(dims) - 1} times) = {hop_length * self.frames[-1]} samples, not num_samples={num_samples}")
        if [d for d in dims if d % num_heads]:
            raise ValueError(f"{who}: stage channels {dims} must be divisible by num_heads {num_heads}")
        if spectrum not in ("complex", "polar"):
            raise ValueError(f"{who}: spectrum must be 'complex' or 'polar', got {spectrum!r}")
        self.spectrum = spectrum
        self.num_samples, self.sample_rate, self.num_classes, self.z_dim = num_samples, sample_rate, num_classes, z_dim
        self.class_embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        code_dim = 2 * z_dim if num_classes else z_dim
        self.mapping = nn.Sequential(linear(code_dim, style_dim), nn.GELU(), linear(style_dim, style_dim))
        self.stem = linear(code_dim, bottom_frames * dims[0])
        self.upsample = nn.ModuleList(FrameUpsample(dims[i], dims[i + 1]) for i in range(len(dims) - 1))
        self.pos = nn.ModuleList(PositionalEncoding2d(1, t, d, pos_encoding) for t, d in zip(self.frames, dims))
        self.stages = nn.ModuleList(
            nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio, style_dim) for _ in range(depth))
            for dim, depth in zip(dims, depths)
        )
        self.out_norm = ModulatedLayerNorm(dims[-1], style_dim)
        self.istft = InverseSTFT(n_fft, hop_length, num_samples)
        self.to_frames = linear(dims[-1], 2 * self.istft.bins)
        if spectrum == "complex":  # start quiet: |x| ~ 0.1
            nn.init.normal_(self.to_frames.weight, std=0.1 * n_fft**0.5 / dims[-1] ** 0.5)
        else:  # magnitudes around e^-2 (|x| ~ 0.01), phases spread over the circle
            nn.init.normal_(self.to_frames.weight[: self.istft.bins], std=0.5 / dims[-1] ** 0.5)
            nn.init.constant_(self.to_frames.bias[: self.istft.bins], -2.0)
            nn.init.normal_(self.to_frames.weight[self.istft.bins :], std=3.0 / dims[-1] ** 0.5)
        self.max_log_magnitude = math.log(10 ** (80 / 20) * n_fft / 4)  # a full-scale sine peaks at n_fft / 4

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices or None -> [N, 1, num_samples] waveforms in [-1, 1]
        n = z.shape[0]
        code = z if self.class_embed is None else torch.cat([z, self.class_embed(y)], dim=1)
        style = self.mapping(code)
        h = self.stem(code).view(n, self.frames[0], -1)  # [N, T0, dims[0]]
        for i, (pos, blocks) in enumerate(zip(self.pos, self.stages)):
            if i > 0:
                h = self.upsample[i - 1](h)
            h = pos(h)
            for block in blocks:
                h = block(h, style)
        frames = self.to_frames(self.out_norm(h, style)).transpose(1, 2).float()  # [N, 2 * bins, T]
        if self.spectrum == "complex":
            real, imag = frames.chunk(2, dim=1)
        else:
            log_magnitude, phase = frames.chunk(2, dim=1)
            magnitude = log_magnitude.clamp(max=self.max_log_magnitude).exp()
            real, imag = magnitude * torch.cos(phase), magnitude * torch.sin(phase)
        return torch.tanh(self.istft(real, imag))


class WaveScaleDiscriminator(nn.Module):
    """One scale of the discriminator: strided 1-D convolutions to tokens, attention over them, a logit.

    Args:
        num_samples: samples of its input.
        num_classes: classes for the projection term (0: none).
        widths: channels of each strided convolution (each divides time by 4).
        kernel_size: kernel of the strided convolutions.
        groups: groups of the strided convolutions (capped by their input channels).
        depth: transformer blocks over the tokens.
        num_heads: attention heads; the last width must be divisible by it.
        attention: "dot" or "l2" attention.
        spectral_norm: "plain", "improved" or "none" on every weight.
    """

    def __init__(
        self, num_samples: int, num_classes: int, widths: tuple[int, ...], kernel_size: int, groups: int, depth: int,
        num_heads: int, attention: AttentionKind, spectral_norm: SpectralNormMode,
    ):
        super().__init__()
        layers = []
        for c_in, c_out in zip((1, *widths[:-1]), widths):
            g = min(groups, c_in)
            while c_in % g or c_out % g:
                g -= 1
            conv = nn.Conv1d(c_in, c_out, kernel_size, stride=4, padding=kernel_size // 2, groups=g)
            layers += [lipschitz(conv, spectral_norm), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        dim = widths[-1]
        tokens = num_samples
        for _ in widths:
            tokens = (tokens + 2 * (kernel_size // 2) - kernel_size) // 4 + 1
        self.pos = PositionalEncoding2d(1, tokens, dim, "learned")
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, 2.0, kind=attention, spectral_norm=spectral_norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = linear(dim, 1, spectral_norm)
        self.embed = lipschitz(ClassProjection(num_classes, dim), spectral_norm) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, 1, L], y: [N] or None -> [N] logits
        h = self.pos(self.convs(x).transpose(1, 2))  # [N, tokens, dim]
        for block in self.blocks:
            h = block(h)
        features = self.norm(h).mean(dim=1)  # [N, dim]
        logits = self.head(features).squeeze(1)
        if self.embed is not None:
            logits = logits + self.embed.project(y, features)
        return logits


class MultiScaleWaveDiscriminator(nn.Module):
    """Waveform discriminators at several resolutions (MelGAN) with attention over time; class projection.

    Args:
        num_samples: samples of a clip.
        sample_rate: samples per second of the clips (a fact of the data, recorded; the layers count samples).
        num_classes: classes for the projection terms; 0 makes the discriminator unconditional.
        scales: sub-discriminators; scale s sees the clip averaged down by 2^s (MelGAN's pooling).
        widths: channels of each sub-discriminator's strided convolutions (each divides time by 4: four
            give tokens of 4^4 = 256 samples, 32 ms at 8 kHz).
        kernel_size: kernel of the strided convolutions.
        groups: groups of the strided convolutions.
        depth: transformer blocks of each sub-discriminator.
        num_heads: attention heads; widths[-1] must be divisible by it.
        attention: "dot" or "l2" (L2-distance attention with tied query and key, Lipschitz).
        spectral_norm: "plain", "improved" (ViTGAN) or "none", on every weight.
        compand: mu of the mu-law companding applied to the waveform before everything else (0: none).
            Like the ear, it makes quiet sound loud: a generator's hiss at -50 dB, invisible next to speech
            at a Lipschitz discriminator's input, becomes a tenth of full scale.
    """

    def __init__(
        self,
        num_samples: int = 8192,
        sample_rate: int = 8000,
        num_classes: int = 0,
        scales: int = 3,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        kernel_size: int = 21,
        groups: int = 4,
        depth: int = 1,
        num_heads: int = 4,
        attention: AttentionKind = "dot",
        spectral_norm: SpectralNormMode = "plain",
        compand: float = 0.0,
    ):
        super().__init__()
        widths = tuple(widths)
        who = "MultiScaleWaveDiscriminator"
        check_ranges(
            who, num_samples=(num_samples, "[1, inf)"), sample_rate=(sample_rate, "[1, inf)"),
            num_classes=(num_classes, "[0, inf)"), scales=(scales, "[1, inf)"), widths=(widths, "[1, inf)"),
            kernel_size=(kernel_size, "[1, inf)"), groups=(groups, "[1, inf)"), depth=(depth, "[0, inf)"),
            num_heads=(num_heads, "[1, inf)"), compand=(compand, "[0, inf)"),
        )
        if scales < 1 or not widths or min(widths) < 1 or groups < 1 or depth < 0 or num_classes < 0:
            raise ValueError(f"{who}: scales >= 1, at least one width >= 1, groups >= 1, depth >= 0 and "
                             f"num_classes >= 0 are needed, got {scales}, {widths}, {groups}, {depth}, {num_classes}")
        if kernel_size < 1:
            raise ValueError(f"{who}: kernel_size must be >= 1, got {kernel_size}")
        if compand < 0:
            raise ValueError(f"{who}: compand must be >= 0 (0: off), got {compand}")
        self.compand = compand
        if widths[-1] % num_heads:
            raise ValueError(f"{who}: widths[-1] {widths[-1]} must be divisible by num_heads {num_heads}")
        if num_samples // 2 ** (scales - 1) < 4 ** len(widths):
            raise ValueError(f"{who}: num_samples {num_samples} is too short for {scales} scales and "
                             f"{len(widths)} strided convolutions")
        self.num_samples, self.sample_rate, self.num_classes = num_samples, sample_rate, num_classes
        self.scales = nn.ModuleList()
        length = num_samples
        for _ in range(scales):
            self.scales.append(WaveScaleDiscriminator(length, num_classes, widths, kernel_size, groups, depth,
                                                      num_heads, attention, spectral_norm))
            length = (length + 2 - 4) // 2 + 1  # avg_pool1d(4, stride 2, padding 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, 1, num_samples] waveforms, y: [N] class indices or None -> [N] logits
        if self.compand:
            x = torch.sign(x) * torch.log1p(self.compand * x.abs()) / math.log1p(self.compand)
        logits = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            logits.append(scale(x, y))
        return torch.stack(logits).mean(dim=0)


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "generator": (
        SpeechTransformerGenerator,
        dict(num_samples=1024, z_dim=8, n_fft=64, hop_length=16, bottom_frames=16, dims=(16, 8, 8), depths=(1, 1, 0),
             num_heads=2, style_dim=8),
    ),
    "generator-cond": (
        SpeechTransformerGenerator,
        dict(num_samples=512, num_classes=3, z_dim=8, n_fft=64, hop_length=32, bottom_frames=8, dims=(16, 8),
             depths=(1, 1), num_heads=2, pos_encoding="sinusoidal", style_dim=8, spectrum="polar"),
    ),
    "discriminator": (
        MultiScaleWaveDiscriminator,
        dict(num_samples=1024, scales=2, widths=(4, 8, 8), depth=1, num_heads=2),
    ),
    "discriminator-cond": (
        MultiScaleWaveDiscriminator,
        dict(num_samples=512, num_classes=3, scales=3, widths=(4, 8), groups=2, depth=2, num_heads=2,
             attention="l2", spectral_norm="improved", compand=255.0),
    ),
}
