"""A spectrogram GAN for short speech clips: convolutions over time with attention over time, on log-magnitude
STFT frames, with a fixed Griffin-Lim inverse (SpecGAN's recipe, Donahue et al., 2019, made conditional).

The spectrogram is `bins = n_fft / 2` frequency bins (the Nyquist bin is left silent) by `frames =
num_samples / hop_length` frames, each value a level in decibels mapped to [-1, 1] (0 dB, a full-scale
sine, is 1; `floor_db` below it is -1, and quieter sound is clamped there). Frequency bins are the channels
of 1-D convolutions over time, as in the spoken-digit classifier and in speech decoders: on 2 CPU cores that
is several times cheaper than 2-D convolutions over a 128 x 128 image, and a digit is a sequence of
spectral shapes in time.

Generator: a global noise vector and a digit embedding -> a style code that modulates every layer norm;
the global noise, the digit and a noise vector per bottom frame (so that where the word sits and the silence
around it need not come from one vector) -> `bottom_frames` tokens -> transformer blocks with attention
over the whole clip -> stages that double time (nearest, then a convolution over time) with modulated
residual convolution blocks -> a convolution to the log-magnitudes of every frame. A fixed inverse turns
them into sound: Griffin-Lim (the fast variant with momentum, Perraudin et al., 2013) finds phases for the
magnitudes, without gradient, and the inverse STFT of magnitude and phase is the clip; gradients reach the
magnitudes through the inverse STFT.

Discriminator: the log-magnitude spectrogram of its input waveform (the same mapping), convolutions over
time (strided, frequency bins as channels), transformer blocks over the remaining frames, mean pooling, a
linear logit and a projection term for the digit (Miyato & Koyama, 2018); spectral norm on every weight.
Optionally it also judges the waveform itself with `MultiScaleWaveDiscriminator` (`wave_scales > 0`), the
two logits averaged.
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
from sagan.models.speech_transformer import MultiScaleWaveDiscriminator


class LogSpectrogram(nn.Module):
    """Waveforms -> log-magnitude STFT frames in [-1, 1] (1: 0 dB, a full-scale sine; -1: `floor_db`).

    Frame t is centered on sample t * hop_length (the generator's frames); the Nyquist bin is dropped.

    Args:
        n_fft: window and DFT size (Hann window).
        hop_length: samples between frames.
        frames: frames kept (num_samples / hop_length).
        floor_db: the level mapped to -1; quieter sound is clamped there.
    """

    def __init__(self, n_fft: int, hop_length: int, frames: int, floor_db: float = 80.0):
        super().__init__()
        self.n_fft, self.hop_length, self.frames, self.floor_db = n_fft, hop_length, frames, floor_db
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.full_scale = n_fft / 4  # |STFT| of a full-scale sine at its bin, Hann window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, 1, L] -> [N, n_fft // 2, frames]
        spec = torch.stft(x.float().flatten(0, 1), self.n_fft, self.hop_length, window=self.window, center=True,
                          return_complex=True)[:, : self.n_fft // 2, : self.frames]
        power = spec.real.square() + spec.imag.square()
        db = 10 * torch.log10(power / self.full_scale**2 + 10 ** (-self.floor_db / 10 - 2))
        return (db / self.floor_db * 2 + 1).clamp(min=-1.0)

    def magnitude(self, level: torch.Tensor) -> torch.Tensor:
        """The inverse of the level mapping: [-1, 1] levels -> linear STFT magnitudes."""
        return self.full_scale * torch.pow(10.0, (level - 1) * self.floor_db / 40)


class GriffinLim(nn.Module):
    """Magnitudes -> a waveform: fast Griffin-Lim phases (no gradient), then the inverse STFT of magnitude and
    phase (with gradient to the magnitudes). Starts from a fixed random phase, so equal inputs give equal clips.

    Args:
        n_fft: window and DFT size.
        hop_length: samples between frames.
        length: samples of the output.
        frames: frames of the input.
        iterations: Griffin-Lim iterations (0: the fixed random phase).
        momentum: the fast variant's momentum (0: plain Griffin-Lim).
    """

    def __init__(self, n_fft: int, hop_length: int, length: int, frames: int, iterations: int = 16,
                 momentum: float = 0.99):
        super().__init__()
        self.istft = InverseSTFT(n_fft, hop_length, length)
        self.n_fft, self.hop_length, self.frames = n_fft, hop_length, frames
        self.iterations, self.momentum = iterations, momentum
        phase = torch.rand(n_fft // 2 + 1, frames, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
        self.register_buffer("phase0", phase, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x.flatten(0, 1), self.n_fft, self.hop_length, window=self.window, center=True,
                          return_complex=True)[..., : self.frames]

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        # magnitude: [N, n_fft // 2 + 1, frames] -> [N, 1, length]
        magnitude = magnitude.float()
        with torch.no_grad():
            m = magnitude.detach()
            angles = torch.polar(torch.ones_like(m), self.phase0.expand_as(m))
            previous = torch.zeros_like(angles)
            for _ in range(self.iterations):
                c = m * angles
                rebuilt = self._spectrum(self.istft(c.real, c.imag))
                accelerated = rebuilt - self.momentum / (1 + self.momentum) * previous
                angles = accelerated / accelerated.abs().clamp_min(1e-16)
                previous = rebuilt
        c = magnitude * angles
        return self.istft(c.real, c.imag)


class ConvBlock1d(nn.Module):
    """A residual block over time: x + conv(act(norm(conv(act(norm(x)))))), layer norms modulated by a code.

    Args:
        dim: channels.
        kernel_size: kernel of both convolutions over time (odd).
        style_dim: size of the code modulating the norms.
    """

    def __init__(self, dim: int, kernel_size: int, style_dim: int):
        super().__init__()
        self.norm1, self.norm2 = ModulatedLayerNorm(dim, style_dim), ModulatedLayerNorm(dim, style_dim)
        self.conv1 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # x: [N, T, dim], style: [N, style_dim] -> [N, T, dim]
        h = self.conv1(F.leaky_relu(self.norm1(x, style), 0.2).transpose(1, 2))
        h = self.conv2(F.leaky_relu(self.norm2(h.transpose(1, 2), style), 0.2).transpose(1, 2))
        return x + h.transpose(1, 2)


class SpecGANGenerator(nn.Module):
    """Log-magnitude spectrogram generator (convolutions and attention over time) with a Griffin-Lim inverse.

    `z_dim` (the size of the noise it takes) is `global_dim + bottom_frames * frame_noise_dim`: a global
    vector, then one vector per bottom frame.

    Args:
        num_samples: samples of a generated clip; must equal hop_length * bottom_frames * 2^(len(dims) - 1).
        sample_rate: samples per second of the clips (a fact of the data, kept for writing them out).
        num_classes: classes to condition on; 0 makes the generator unconditional.
        global_dim: size of the global noise vector (and of the class embedding).
        frame_noise_dim: size of the noise vector of each bottom frame (0: none).
        n_fft: window and DFT size of the STFT.
        hop_length: samples between frames (at most n_fft / 2).
        bottom_frames: frames of the first stage.
        dims: channels of each stage, fewest frames first; time doubles between stages.
        attention_depth: transformer blocks (attention over time) in the first stage.
        conv_depth: residual convolution blocks in each stage.
        kernel_size: kernel of the convolutions over time (odd).
        num_heads: attention heads; dims[0] must be divisible by it.
        style_dim: size of the code of noise and class that modulates every layer norm.
        floor_db: the quietest level it can make, in dB below full scale.
        griffin_lim_iters: Griffin-Lim iterations of the inverse.
    """

    def __init__(
        self,
        num_samples: int = 8192,
        sample_rate: int = 8000,
        num_classes: int = 0,
        global_dim: int = 64,
        frame_noise_dim: int = 4,
        n_fft: int = 256,
        hop_length: int = 64,
        bottom_frames: int = 16,
        dims: tuple[int, ...] = (256, 256, 128, 128),
        attention_depth: int = 2,
        conv_depth: int = 1,
        kernel_size: int = 5,
        num_heads: int = 4,
        style_dim: int = 64,
        floor_db: float = 80.0,
        griffin_lim_iters: int = 16,
    ):
        super().__init__()
        dims = tuple(dims)
        who = "SpecGANGenerator"
        check_ranges(
            who, num_samples=(num_samples, "[1, inf)"), sample_rate=(sample_rate, "[1, inf)"),
            num_classes=(num_classes, "[0, inf)"), global_dim=(global_dim, "[1, inf)"),
            frame_noise_dim=(frame_noise_dim, "[0, inf)"), n_fft=(n_fft, "[4, inf)"),
            hop_length=(hop_length, "[1, inf)"), bottom_frames=(bottom_frames, "[1, inf)"), dims=(dims, "[1, inf)"),
            attention_depth=(attention_depth, "[0, inf)"), conv_depth=(conv_depth, "[0, inf)"),
            kernel_size=(kernel_size, "[1, inf)"), num_heads=(num_heads, "[1, inf)"),
            style_dim=(style_dim, "[1, inf)"), floor_db=(floor_db, "(0, 200]"),
            griffin_lim_iters=(griffin_lim_iters, "[0, inf)"),
        )
        if not dims:
            raise ValueError(f"{who}: dims must name at least one stage")
        frames = bottom_frames * 2 ** (len(dims) - 1)
        if hop_length * frames != num_samples:
            raise ValueError(f"{who}: hop_length {hop_length} x {frames} frames ({bottom_frames} doubled "
                             f"{len(dims) - 1} times) = {hop_length * frames} samples, not num_samples={num_samples}")
        if hop_length > n_fft // 2:
            raise ValueError(f"{who}: hop_length {hop_length} must be at most n_fft / 2 = {n_fft // 2}")
        if dims[0] % num_heads:
            raise ValueError(f"{who}: dims[0] {dims[0]} must be divisible by num_heads {num_heads}")
        if kernel_size % 2 == 0:
            raise ValueError(f"{who}: kernel_size must be odd, got {kernel_size}")
        self.num_samples, self.sample_rate, self.num_classes = num_samples, sample_rate, num_classes
        self.global_dim, self.frame_noise_dim, self.bottom_frames = global_dim, frame_noise_dim, bottom_frames
        self.z_dim = global_dim + bottom_frames * frame_noise_dim
        self.class_embed = nn.Embedding(num_classes, global_dim) if num_classes else None
        code_dim = 2 * global_dim if num_classes else global_dim
        self.mapping = nn.Sequential(linear(code_dim, style_dim), nn.GELU(), linear(style_dim, style_dim))
        self.stem = linear(code_dim, bottom_frames * dims[0])
        self.frame_noise = linear(frame_noise_dim, dims[0]) if frame_noise_dim else None
        self.pos = PositionalEncoding2d(1, bottom_frames, dims[0], "learned")
        self.attention = nn.ModuleList(TransformerBlock(dims[0], num_heads, 2.0, style_dim)
                                       for _ in range(attention_depth))
        self.to_stage = nn.ModuleList(
            nn.Conv1d(dims[max(i - 1, 0)], dims[i], kernel_size, padding=kernel_size // 2) if i else nn.Identity()
            for i in range(len(dims))
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(ConvBlock1d(d, kernel_size, style_dim) for _ in range(conv_depth)) for d in dims
        )
        self.out_norm = ModulatedLayerNorm(dims[-1], style_dim)
        self.spectrogram = LogSpectrogram(n_fft, hop_length, frames, floor_db)
        self.to_levels = nn.Conv1d(dims[-1], n_fft // 2, kernel_size, padding=kernel_size // 2)
        nn.init.normal_(self.to_levels.weight, std=0.1 / (dims[-1] * kernel_size) ** 0.5)
        nn.init.constant_(self.to_levels.bias, -0.5)  # start quiet: -60 dB
        self.inverse = GriffinLim(n_fft, hop_length, num_samples, frames, griffin_lim_iters)

    def levels(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The generated spectrogram: [N, z_dim] noise (and [N] classes) -> [N, n_fft // 2, frames] levels."""
        n = z.shape[0]
        z_global, z_frames = z[:, : self.global_dim], z[:, self.global_dim :]
        code = z_global if self.class_embed is None else torch.cat([z_global, self.class_embed(y)], dim=1)
        style = self.mapping(code)
        h = self.stem(code).view(n, self.bottom_frames, -1)  # [N, T0, dims[0]]
        if self.frame_noise is not None:
            h = h + self.frame_noise(z_frames.reshape(n, self.bottom_frames, self.frame_noise_dim))
        h = self.pos(h)
        for block in self.attention:
            h = block(h, style)
        for i, (to_stage, blocks) in enumerate(zip(self.to_stage, self.stages)):
            if i > 0:
                h = to_stage(F.interpolate(h.transpose(1, 2), scale_factor=2.0, mode="nearest")).transpose(1, 2)
            for block in blocks:
                h = block(h, style)
        h = F.leaky_relu(self.out_norm(h, style), 0.2).transpose(1, 2)
        return self.to_levels(h).float().clamp(max=1.25)  # [N, bins, frames]; +10 dB headroom

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] class indices or None -> [N, 1, num_samples] waveforms in [-1, 1]
        magnitude = F.pad(self.spectrogram.magnitude(self.levels(z, y)), (0, 0, 0, 1))  # a silent Nyquist bin
        return self.inverse(magnitude).clamp(-1, 1)


class SpectrogramDiscriminator(nn.Module):
    """Judges a clip by its log-magnitude spectrogram (convolutions and attention over time), optionally also by
    its waveform (MelGAN's multi-scale discriminator); projection term for the class.

    Args:
        num_samples: samples of a clip.
        sample_rate: samples per second of the clips (a fact of the data, recorded).
        num_classes: classes for the projection term; 0 makes the discriminator unconditional.
        n_fft: window and DFT size of its STFT.
        hop_length: samples between frames.
        floor_db: the quietest level it distinguishes, in dB below full scale.
        widths: channels of each convolution over time; every one after the first halves time.
        kernel_size: kernel of the convolutions.
        depth: transformer blocks over the remaining frames.
        num_heads: attention heads; widths[-1] must be divisible by it.
        attention: "dot" or "l2" attention.
        spectral_norm: "plain", "improved" or "none" on every weight.
        wave_scales: scales of a `MultiScaleWaveDiscriminator` that also judges the waveform (0: none).
        pooling: how the frames' tokens become one feature vector: "flatten" (a linear map of all of them, as
            the dense layer of SpecGAN's discriminator: it judges the clip as a whole) or "mean" (a mean over
            frames: the logit is then nearly a sum of per-frame scores, which a generator satisfies by
            repeating the best-scoring frame, a steady tone).
    """

    def __init__(
        self,
        num_samples: int = 8192,
        sample_rate: int = 8000,
        num_classes: int = 0,
        n_fft: int = 256,
        hop_length: int = 64,
        floor_db: float = 80.0,
        widths: tuple[int, ...] = (128, 256, 256),
        kernel_size: int = 5,
        depth: int = 1,
        num_heads: int = 4,
        attention: AttentionKind = "dot",
        spectral_norm: SpectralNormMode = "plain",
        wave_scales: int = 0,
        pooling: Literal["flatten", "mean"] = "flatten",
    ):
        super().__init__()
        widths = tuple(widths)
        who = "SpectrogramDiscriminator"
        check_ranges(
            who, num_samples=(num_samples, "[1, inf)"), sample_rate=(sample_rate, "[1, inf)"),
            num_classes=(num_classes, "[0, inf)"), n_fft=(n_fft, "[4, inf)"), hop_length=(hop_length, "[1, inf)"),
            floor_db=(floor_db, "(0, 200]"), widths=(widths, "[1, inf)"), kernel_size=(kernel_size, "[1, inf)"),
            depth=(depth, "[0, inf)"), num_heads=(num_heads, "[1, inf)"), wave_scales=(wave_scales, "[0, inf)"),
        )
        if not widths or widths[-1] % num_heads:
            raise ValueError(f"{who}: widths {widths} must be non-empty, the last divisible by num_heads {num_heads}")
        if pooling not in ("flatten", "mean"):
            raise ValueError(f"{who}: pooling must be 'flatten' or 'mean', got {pooling!r}")
        frames = num_samples // hop_length
        tokens = frames
        for _ in widths[1:]:
            tokens = (tokens + 2 * (kernel_size // 2) - kernel_size) // 2 + 1
        if frames < 2 ** (len(widths) - 1):
            raise ValueError(f"{who}: {frames} frames are too few for {len(widths) - 1} strided convolutions")
        self.num_samples, self.sample_rate, self.num_classes = num_samples, sample_rate, num_classes
        self.spectrogram = LogSpectrogram(n_fft, hop_length, frames, floor_db)
        layers = []
        for i, (c_in, c_out) in enumerate(zip((n_fft // 2, *widths[:-1]), widths)):
            conv = nn.Conv1d(c_in, c_out, kernel_size, stride=1 if i == 0 else 2, padding=kernel_size // 2)
            layers += [lipschitz(conv, spectral_norm), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        dim = widths[-1]
        self.pos = PositionalEncoding2d(1, tokens, dim, "learned")
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, 2.0, kind=attention, spectral_norm=spectral_norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.pool = linear(tokens * dim, dim, spectral_norm) if pooling == "flatten" else None
        self.head = linear(dim, 1, spectral_norm)
        self.embed = lipschitz(ClassProjection(num_classes, dim), spectral_norm) if num_classes else None
        self.wave = (MultiScaleWaveDiscriminator(num_samples, sample_rate, num_classes, wave_scales, kernel_size=11,
                                                 spectral_norm=spectral_norm) if wave_scales else None)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, 1, num_samples] waveforms, y: [N] class indices or None -> [N] logits
        h = self.pos(self.convs(self.spectrogram(x)).transpose(1, 2))  # [N, tokens, dim]
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        features = h.mean(dim=1) if self.pool is None else F.leaky_relu(self.pool(h.flatten(1)), 0.2)  # [N, dim]
        logits = self.head(features).squeeze(1)
        if self.embed is not None:
            logits = logits + self.embed.project(y, features)
        if self.wave is not None:
            logits = (logits + self.wave(x, y)) / 2
        return logits


# Small configurations for the contract tests: name -> (class, keyword arguments).
TINY = {
    "generator": (
        SpecGANGenerator,
        dict(num_samples=256, global_dim=8, frame_noise_dim=2, n_fft=32, hop_length=16, bottom_frames=8, dims=(16, 8),
             attention_depth=1, conv_depth=1, num_heads=2, style_dim=8, griffin_lim_iters=2),
    ),
    "generator-cond": (
        SpecGANGenerator,
        dict(num_samples=512, num_classes=3, global_dim=8, frame_noise_dim=0, n_fft=32, hop_length=16,
             bottom_frames=32, dims=(16,), attention_depth=1, conv_depth=1, num_heads=2, style_dim=8,
             griffin_lim_iters=0),
    ),
    "discriminator": (
        SpectrogramDiscriminator,
        dict(num_samples=512, n_fft=32, hop_length=16, widths=(8, 8), depth=1, num_heads=2, pooling="mean"),
    ),
    "discriminator-cond": (
        SpectrogramDiscriminator,
        dict(num_samples=1024, num_classes=3, n_fft=32, hop_length=16, widths=(8, 8, 8), depth=1, num_heads=2,
             attention="l2", spectral_norm="improved", wave_scales=1),
    ),
}
