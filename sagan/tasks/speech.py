"""The LightningModule that trains a waveform generator: `ImageGAN` with sounds for samples.

Everything `ImageGAN` does is generic over the tensor the generator makes (here `[N, 1, num_samples]`
waveforms in [-1, 1]): manual optimization, per-network DDP, exact resume, non-finite step skipping, EMA
of the generator, checkpoints, validation logits and the sample-quality metrics. What differs is how
samples are shown: `write_samples` (called by the samples callback) writes the EMA generator's clips for
the fixed noise as WAV files and a grid of their spectrograms into the run directory, and sends both to
W&B (`samples/audio`, `samples/spectrograms`).
"""

from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from torchvision.utils import save_image

from sagan.errors import UsageError
from sagan.latent import noise
from sagan.tasks.image import ImageGAN
from sagan.training.sample_grid import to_grid

SPECTROGRAM_DB = 80.0  # dynamic range shown in spectrogram images


def spectrogram_images(clips: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """[N, 1, L] waveforms -> [N, 1, F, T] log-magnitude spectrograms in [-1, 1] (0 dB, full scale, at the
    top of the range; low frequencies at the bottom): 32 ms Hann windows, 8 ms hops."""
    n_fft = max(16, round(0.032 * sample_rate))
    window = torch.hann_window(n_fft, device=clips.device)
    spec = torch.stft(clips.float().flatten(0, 1), n_fft, n_fft // 4, window=window, return_complex=True).abs()
    db = 20 * torch.log10(spec / (window.sum() / 2) + 1e-8)  # a full-scale sine: 0 dB
    image = (db.clamp(-SPECTROGRAM_DB, 0) / SPECTROGRAM_DB * 2 + 1).flip(1)  # [N, F, T]
    return image.unsqueeze(1)


def write_wavs(clips: torch.Tensor, names: list[str], folder: Path, sample_rate: int) -> list[Path]:
    """Writes each `[1, L]` clip in [-1, 1] as a 16-bit mono WAV file `<folder>/<name>.wav`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for clip, name in zip(clips, names):
        samples = np.round(clip.detach().float().clamp(-1, 1).cpu().numpy()[0] * 32767).astype(np.int16)
        paths.append(folder / f"{name}.wav")
        wavfile.write(paths[-1], sample_rate, samples)
    return paths


def clip_names(labels: torch.Tensor | None, n: int) -> list[str]:
    """File names of n clips: their index, and their class when conditional."""
    if labels is None:
        return [f"{i:03d}" for i in range(n)]
    return [f"{i:03d}_class{int(y)}" for i, y in enumerate(labels)]


@torch.no_grad()
def write_wav_samples(
    model: "SpeechGAN", out: Path, n: int, labels: torch.Tensor | None, seed: int = 0, batch_size: int = 256,
    truncation: float | None = None,
) -> list[Path]:
    """`n` clips of the EMA generator for seeded noise (truncated at `truncation` when given; the noise of
    `sagan sample` for images) and `labels` as WAV files in `out`, with `spectrograms.png`; returns the
    WAV files' paths."""
    z = noise(n, model.generator.z_dim, truncation, torch.Generator().manual_seed(seed))
    chunks = []
    for start in range(0, n, batch_size):
        y = None if labels is None else labels[start : start + batch_size].to(model.device)
        chunks.append(model(z[start : start + batch_size].to(model.device), y).float().cpu())
    clips = torch.cat(chunks)
    paths = write_wavs(clips, clip_names(labels, n), out, model.sample_rate)
    nrow = model.num_classes if labels is not None and len(labels.unique()) > 1 else max(int(n**0.5), 1)
    save_image(to_grid(spectrogram_images(clips, model.sample_rate), nrow), out / "spectrograms.png")
    return paths


class SpeechGAN(ImageGAN):
    """Adversarial training of a generator G(z, y) -> waveform against a discriminator D(waveform, y) -> logit.

    Takes `ImageGAN`'s arguments; the generator must also have a `sample_rate` (the CLI links it from the
    data module). `grid_size` is the number of clips in each sample set.
    """

    def setup(self, stage: str) -> None:
        if not hasattr(self.generator, "sample_rate"):
            raise UsageError(f"SpeechGAN needs a waveform generator with a sample_rate, got {type(self.generator).__name__}")
        super().setup(stage)

    @property
    def sample_rate(self) -> int:
        return self.generator.sample_rate

    @torch.no_grad()
    def write_samples(self, directory: Path, step: int, loggers) -> None:
        """The fixed noise's clips as `audio_<step>/<i>_class<y>.wav` and `spectrograms_<step>.png` (one class
        per column) in `directory`, and to loggers that take audio and images (W&B)."""
        clips = self.fixed_samples().float().cpu()
        labels = self.grid_y.cpu() if self.num_classes else None
        names = clip_names(labels, len(clips))
        write_wavs(clips, names, directory / f"audio_{step:06d}", self.sample_rate)
        nrow = self.num_classes or max(int(len(clips) ** 0.5), 1)
        grid = to_grid(spectrogram_images(clips, self.sample_rate), nrow)
        save_image(grid, directory / f"spectrograms_{step:06d}.png")
        for logger in loggers:
            if hasattr(logger, "log_audio"):
                logger.log_audio(key="samples/audio", audios=[c[0].numpy() for c in clips],
                                 sample_rate=[self.sample_rate] * len(clips), caption=names)
            if hasattr(logger, "log_image"):
                logger.log_image(key="samples/spectrograms", images=[grid], caption=[f"generator iteration {step}"])
