"""A spoken-digit classifier as the feature extractor of speech metrics (the SC09 protocol, offline).

Donahue et al. (2019, WaveGAN) score generated spoken digits by the Inception Score of a digit classifier
trained on SC09; later papers (DiffWave, SaShiMi) add a Frechet distance in its features. Here the
classifier is a small CNN on log-mel spectrograms, trained on the embedded eSpeak digits' training split
(seeded, one thread, under a minute on CPU, cached), and checked on the held-out voices. Its numbers are
logged as `val/spoken_digits_is` and `val/spoken_digits_fid` (the Frechet distance in this classifier's
128 features, not Inception's): they are comparable between runs, not with SC09 papers, whose classifier
was trained on recorded speech.

The log-mel front end depends on time and frequency, not on samples: 16 ms frames with 8 ms hops and
40 mel bands from 60 Hz to 3.8 kHz at any sample rate of 8 kHz or more, so the classifier accepts clips
of other rates and lengths (`sample_rate` argument; global pooling over time).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from sagan.evaluation.features import CachedClassifierFeatures

N_MELS, F_MIN, F_MAX = 40, 60.0, 3800.0
FRAME_SECONDS = 0.032  # window; the hop is half of it
LOG_FLOOR = 1e-8


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, `[n_mels, n_fft // 2 + 1]`, each peaking at 1."""
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
    edges_mel = torch.linspace(mel(f_min), mel(f_max), n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)  # [n_mels + 2] Hz
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # [F] Hz
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (center - lower)
    falling = (upper - bins) / (upper - center)
    return rising.minimum(falling).clamp(min=0).float()


def stft_sizes(sample_rate: int) -> tuple[int, int]:
    """(window and FFT size, hop) in samples for 32 ms windows with 16 ms hops at this rate."""
    n_fft = round(FRAME_SECONDS * sample_rate)
    return n_fft, n_fft // 2


def log_mel(x: torch.Tensor, sample_rate: int, filterbank: torch.Tensor | None = None) -> torch.Tensor:
    """[N, 1, L] waveforms -> [N, 1, n_mels, frames] log mel power, log(mel + 1e-8); the power is divided by
    the squared window sum, so a sound gives the same values at every sample rate."""
    n_fft, hop = stft_sizes(sample_rate)
    if filterbank is None:
        filterbank = mel_filterbank(n_fft, sample_rate).to(x.device)
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x.float().flatten(0, 1), n_fft, hop, window=window, center=True, return_complex=True)
    power = (spec.real.square() + spec.imag.square()) / window.sum().square()  # [N, F, frames], rate-independent
    return torch.log(filterbank @ power + LOG_FLOOR).unsqueeze(1)


class SpokenDigitsCNN(nn.Module):
    """A small CNN on log-mel spectrograms: 128 features (global mean over time), 10 logits.

    Args:
        sample_rate: sample rate of the waveforms it is given.
    """

    def __init__(self, sample_rate: int = 8000):
        super().__init__()
        self.sample_rate = sample_rate
        self.register_buffer("filterbank", mel_filterbank(stft_sizes(sample_rate)[0], sample_rate), persistent=False)
        self.register_buffer("mean", torch.zeros(()))  # log-mel normalization, set from the training data
        self.register_buffer("std", torch.ones(()))
        layers, channels = [], N_MELS  # mel bands are the channels of 1-D convolutions over time
        for width in (64, 64, 128):
            layers += [nn.Conv1d(channels, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(2)]
            channels = width
        self.body = nn.Sequential(*layers, nn.Conv1d(channels, 128, 3, padding=1), nn.BatchNorm1d(128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, 1, L] in [-1, 1] -> [N, 40, frames], normalized
        return (log_mel(x, self.sample_rate, self.filterbank).squeeze(1) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, 1, L] waveforms in [-1, 1] -> ([N, 128], [N, 10])
        features = self.body(self.spectrogram(x)).mean(dim=2)
        return features, self.head(features)


def _augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random gain (x0.3-1.5), circular shift, and a little white noise: the classifier must not care."""
    n, _, length = x.shape
    gain = torch.empty(n, 1, 1).uniform_(0.3, 1.5, generator=rng)
    shifts = torch.randint(0, length, (n,), generator=rng)
    index = (torch.arange(length)[None, :] - shifts[:, None]) % length
    x = x.gather(2, index[:, None, :]) * gain
    noise = torch.rand(n, 1, 1, generator=rng) * 0.01
    return (x + noise * torch.randn(x.shape, generator=rng)).clamp(-1, 1)


def train_spoken_digits_classifier(epochs: int = 12, seed: int = 0) -> tuple[SpokenDigitsCNN, float]:
    """Trains `SpokenDigitsCNN` on the embedded spoken digits' training split, on one thread (the same
    weights on every machine); returns it (eval mode) and its accuracy on the held-out voices."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train(epochs: int, seed: int) -> tuple[SpokenDigitsCNN, float]:
    from datamodules.audio.spoken_digits import spoken_digits

    x, y = spoken_digits("train")
    held_x, held_y = spoken_digits("val")
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SpokenDigitsCNN()
    with torch.no_grad():
        spec = log_mel(x, net.sample_rate, net.filterbank)
        net.mean.fill_(spec.mean())
        net.std.fill_(spec.std())
    batch = 64
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (len(x) // batch))
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=rng)
        for start in range(0, len(x) - batch + 1, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(net(_augment(x[idx], rng))[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(held_x)[1].argmax(1) == held_y).float().mean().item()
    return net, accuracy


class SpokenDigitsFeatures(CachedClassifierFeatures):
    """The spoken-digit classifier's 128-d features and 10 logits: offline speech IS and Frechet distance.

    Trained on first use (under a minute on CPU, seeded, one thread) and cached as
    `<cache_dir>/spoken_digits_cnn_v1.pt`. Metrics are logged as `val/spoken_digits_*`.

    Args:
        sample_rate: sample rate of the waveforms it scores (8 kHz or more; the classifier hears 60 Hz-3.8 kHz).
        cache_dir: folder of the cached classifier; default `$SAGAN_CACHE` or `~/.cache/sagan`.
    """

    num_features = 128
    num_classes = 10
    metric_prefix = "spoken_digits_"
    version = "spoken_digits_cnn_v1"

    def __init__(self, sample_rate: int = 8000, cache_dir: str | None = None):
        super().__init__(cache_dir)
        if not 8000 <= sample_rate <= 192_000:
            raise ValueError(f"sample_rate must be in [8000, 192000] Hz, got {sample_rate}")
        self.sample_rate = sample_rate

    @property
    def fingerprint(self) -> str:
        return f"{super().fingerprint}:{self.sample_rate}Hz"

    def build(self) -> SpokenDigitsCNN:
        return SpokenDigitsCNN()

    def fit(self) -> tuple[SpokenDigitsCNN, dict[str, float]]:
        net, accuracy = train_spoken_digits_classifier()
        return net, {"held_out_accuracy": accuracy}

    def adapt(self, net: SpokenDigitsCNN) -> SpokenDigitsCNN:
        if self.sample_rate == net.sample_rate:
            return net
        adapted = SpokenDigitsCNN(self.sample_rate)  # the same weights behind the front end of another rate
        adapted.load_state_dict(net.state_dict())
        return adapted

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, 1, L] waveforms in [-1, 1] -> ([N, 128], [N, 10])
        return self.net(x.float().clamp(-1, 1))
