"""Video metrics: the moving-digits Frechet distance against SciPy, its names, and I3D's start-up check."""

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import EXPERIMENTS
from torch.testing import assert_close

from datamodules.video.moving_digits import MovingDigitsDataModule
from sagan.commands import main
from sagan.errors import UsageError
from sagan.evaluation.metrics import SampleMetrics, SampleQuality, extract, real_statistics
from sagan.evaluation.video_features import I3D_FILE, I3DFeatures, MovingDigitsFeatures


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64 with SciPy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_moving_digits_distance_equals_scipy(tmp_path):
    features = MovingDigitsFeatures(train_steps=2, cache_dir=str(tmp_path)).load()  # a quickly trained instrument
    data = MovingDigitsDataModule(num_train=240, num_val=240)  # more clips than the 192 features
    data.setup()
    real_clips = torch.stack([data.train_set[i][0] for i in range(240)])
    fake_clips = torch.stack([data.val_set[i][0] for i in range(240)]).flip(1)  # held-out clips played backwards
    real, _ = extract(features, real_clips.split(120), torch.device("cpu"))
    fake, logits = extract(features, fake_clips.split(120), torch.device("cpu"))
    assert real.shape == fake.shape == (240, 192)
    results = SampleMetrics(inception_score=False, kid_subsets=5, kid_subset_size=100)(fake, logits, real_statistics(real, 240))
    expected = frechet_distance(fake.double().numpy(), real.double().numpy())
    assert_close(results["fid"].double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-3, atol=1e-3)
    assert features.metric_key("fid") == "moving_digits_fd" and features.metric_key("kid") == "moving_digits_kd"
    assert 0 <= features.accuracy <= 1 and features.velocity_error > 0  # held-out scores saved with the network
    cached = MovingDigitsFeatures(train_steps=2, cache_dir=str(tmp_path)).load()  # read back, not trained again
    assert cached.fingerprint == features.fingerprint
    assert (cached.accuracy, cached.velocity_error) == (features.accuracy, features.velocity_error)


def test_i3d_weights_are_never_downloaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UsageError, match=f"place {I3D_FILE} .* in .*torch/hub/checkpoints/"):
        I3DFeatures()
    with pytest.raises(UsageError, match="not found at"):
        I3DFeatures(weights_path=str(tmp_path / "nope.pt"))
    with pytest.raises(SystemExit) as exit_info:  # the CLI stops before a run directory exists
        main(["fit", "--config", str(EXPERIMENTS / "videotransformer_moving_digits.yaml"), "--run_root",
              str(tmp_path / "runs"), "--metrics.features=sagan.evaluation.video_features.I3DFeatures"])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sagan: error")]
    assert len(lines) == 1 and I3D_FILE in lines[0]
    assert not (tmp_path / "runs").exists()


class _FakeI3D(torch.nn.Module):
    """Stands in for the TorchScript I3D: the same call, features that record what it was given."""

    def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
        # x: [N, 3, T, H, W] -> [N, 400]: per frame mean and the flags
        means = x.mean(dim=(1, 3, 4))  # [N, T]
        flags = torch.tensor([float(rescale), float(resize), float(return_features)]).expand(x.shape[0], 3)
        return torch.cat([means, flags, torch.zeros(x.shape[0], 400 - means.shape[1] - 3)], dim=1)


def test_i3d_takes_clips_channels_first_quantized(tmp_path, monkeypatch):
    path = tmp_path / I3D_FILE
    torch.jit.script(_FakeI3D()).save(str(path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    extractor = I3DFeatures(weights_path=str(path)).load()
    clips = torch.linspace(-1, 1, 2 * 4 * 1 * 8 * 8).view(2, 4, 1, 8, 8)  # gray: repeated to RGB
    features, logits = extractor(clips)
    assert features.shape == logits.shape == (2, 400)
    quantized = ((clips + 1) * 127.5).round() / 127.5 - 1
    assert_close(features[:, :4], quantized.mean(dim=(2, 3, 4)))  # frame by frame: [N, C, T, H, W] went in
    assert features[0, 4:7].tolist() == [0.0, 1.0, 1.0]  # rescale=False, resize=True, return_features=True
    assert extractor.metric_key("fid") == "fvd" and extractor.fingerprint.startswith("i3d-torchscript:")


@pytest.mark.slow
def test_default_moving_digits_classifier_judges_appearance_and_motion():
    from sagan.benchmarks.video import reference, shuffled, static

    features = MovingDigitsFeatures().load()  # the default instrument: 800 batches (minutes on CPU)
    assert features.accuracy > 0.2 and features.velocity_error < 0.5
    quality = SampleQuality(features, num_samples=1000, num_real=None, inception_score=False, kid_subsets=10,
                            kid_subset_size=500)
    data = MovingDigitsDataModule(num_val=1000)
    quality.prepare(data, torch.device("cpu"))
    floor = reference(data, quality, "cpu", None)["fid"]
    assert reference(data, quality, "cpu", static)["fid"] > 5 * floor
    assert reference(data, quality, "cpu", shuffled)["fid"] > 5 * floor
