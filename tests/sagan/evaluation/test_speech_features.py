"""The spoken-digit classifier's front end, and speech IS / Frechet distance against NumPy and SciPy."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg
from probes import UntrainedSpokenDigits
from torch.testing import assert_close

from datamodules.audio.spoken_digits import SpokenDigitsDataModule
from sagan.evaluation.metrics import SampleQuality
from sagan.evaluation.speech_features import (
    F_MAX,
    F_MIN,
    SpokenDigitsCNN,
    SpokenDigitsFeatures,
    log_mel,
    mel_filterbank,
    train_spoken_digits_classifier,
)


def _tone(frequency: float, rate: int, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    return (0.5 * torch.sin(2 * torch.pi * frequency * t)).float()[None, None]


def test_mel_filters_peak_at_their_centers_and_cover_the_band():
    bank = mel_filterbank(256, 8000)  # 31.25 Hz bins
    assert bank.shape == (40, 129) and bank.max() <= 1
    bins = torch.arange(129) * 31.25
    centers = bins[bank.argmax(1)]
    assert (centers.diff() > 0).all() and F_MIN < centers[0] < 150 and 3500 < centers[-1] < F_MAX
    assert bank[:, bins > F_MAX].abs().sum() == 0 and bank[:, bins < F_MIN].abs().sum() == 0


def test_log_mel_hears_the_same_sound_at_8_and_16_khz():
    low, high = log_mel(_tone(1000.0, 8000), 8000), log_mel(_tone(1000.0, 16000), 16000)
    assert low.shape == high.shape == (1, 1, 40, 32)  # 16 ms hops at either rate
    middle = slice(4, 28)  # away from the clip's edges
    assert_close(high[..., middle], low[..., middle], rtol=0, atol=0.05)
    loudest = low[0, 0, :, 16].argmax()
    assert bool(low[0, 0, loudest, 16] > low[0, 0, :, 16].median() + 5)  # a tone lights one band


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # the untrained network's dead units have no variance
def test_speech_is_and_frechet_distance_match_numpy_and_scipy(tmp_path):
    data = SpokenDigitsDataModule()
    extractor = UntrainedSpokenDigits()
    quality = SampleQuality(extractor, num_samples=160, num_real=200, batch_size=16, kid=False, is_splits=1,
                            cache_dir=str(tmp_path))
    quality.prepare(data, torch.device("cpu"))
    frequencies = torch.linspace(200, 1600, 10)

    def sample(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # a clip that depends on the noise and the class
        t = torch.arange(8192) / 8000
        return 0.3 * torch.tanh(z[:, :1, None]) * torch.sin(2 * torch.pi * frequencies[y][:, None, None] * t)

    results = quality.evaluate(sample, 4, 10, torch.device("cpu"))
    assert set(results) == {"fid", "is", "is_std"} and extractor.metric_prefix == "spoken_digits_"
    # the same samples and real clips, scored independently
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(160, 4, generator=rng)
    y = torch.randint(0, 10, (160,), generator=rng)
    with torch.no_grad():
        features, logits = (t.double().numpy() for t in extractor.net(sample(z, y)))
        subset = torch.randperm(1670, generator=torch.Generator().manual_seed(0))[:200]
        real = extractor.net(data.train_set.tensors[0][subset])[0].double().numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    inception_score = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0))), axis=1)))
    mu_r, mu_g = real.mean(0), features.mean(0)
    cov_r, cov_g = np.cov(real, rowvar=False), np.cov(features, rowvar=False)
    frechet = np.sum((mu_r - mu_g) ** 2) + np.trace(cov_r + cov_g - 2 * linalg.sqrtm(cov_r @ cov_g).real)
    assert_close(results["is"].double(), torch.tensor(inception_score, dtype=torch.float64), rtol=1e-4, atol=0)
    assert_close(results["fid"].double(), torch.tensor(frechet, dtype=torch.float64), rtol=1e-3, atol=1e-4)


def test_a_cached_classifier_is_reused_and_another_rate_keeps_its_weights(tmp_path):
    net = SpokenDigitsCNN()
    torch.save({"state_dict": net.state_dict(), "held_out_accuracy": 0.5}, Path(tmp_path) / "spoken_digits_cnn_v1.pt")
    at_16k = SpokenDigitsFeatures(sample_rate=16000, cache_dir=str(tmp_path)).load()
    assert at_16k.accuracy == 0.5 and at_16k.net.sample_rate == 16000
    assert_close(at_16k.net.head.weight, net.head.weight)
    assert "16000Hz" in at_16k.fingerprint
    with pytest.raises(ValueError, match="sample_rate"):
        SpokenDigitsFeatures(sample_rate=4000)


@pytest.mark.slow
def test_classifier_recognizes_held_out_voices():
    _, accuracy = train_spoken_digits_classifier()
    assert accuracy >= 0.95
