"""FID / IS / KID / mode coverage against closed forms, the real-statistics cache, and Inception weights."""

import lightning as L
import numpy as np
import pytest
import scipy.linalg
import torch
from torch.testing import assert_close

from datamodules.image.digits import DigitsDataModule
from sagan.errors import UsageError
from sagan.evaluation.features import FeatureExtractor, InceptionFeatures
from sagan.evaluation.metrics import SampleMetrics, SampleQuality, real_statistics, shard


class TinyFeatures(FeatureExtractor):
    """A fixed random projection of 4x4-pooled images (16 features, 5 logits) that counts what it sees."""

    num_features = 16
    num_classes = 5
    metric_prefix = "tiny_"

    def __init__(self, scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(16, 16, generator=g))
        self.register_buffer("head", torch.randn(16, 5, generator=g))
        self.scale = scale
        self.images_seen = 0

    @property
    def fingerprint(self) -> str:
        return f"tiny:{self.scale}"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, C, H, W] -> ([N, 16], [N, 5])
        self.images_seen += len(x)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float().mean(1, keepdim=True), 4).flatten(1)
        features = self.scale * pooled @ self.proj
        return features, features @ self.head


def _metrics(real: torch.Tensor, fake: torch.Tensor, logits=None, **kwargs) -> dict:
    metrics = SampleMetrics(**kwargs)
    return metrics(fake, logits if logits is not None else torch.zeros(len(fake), 3), real_statistics(real, 10_000))


def _closed_form_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


# ----------------------------------------------------------------------------------- closed forms
def test_fid_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 8, dtype=torch.float64).float()
    fid = _metrics(x, x, inception_score=False, kid=False)["fid"]
    assert_close(fid, torch.tensor(0.0), atol=1e-3, rtol=0)


def test_fid_between_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 6)).astype(np.float32)
    b = (rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6)) * 0.7 + 0.5).astype(np.float32)
    fid = _metrics(torch.from_numpy(a), torch.from_numpy(b), inception_score=False, kid=False)["fid"]
    expected = _closed_form_fid(a.astype(np.float64), b.astype(np.float64))
    assert expected > 1.0  # the sets really differ
    assert_close(fid.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-4)


def test_inception_score_of_a_uniform_classifier_is_one():
    score = _metrics(torch.randn(10, 4), torch.randn(100, 4), logits=torch.zeros(100, 7), fid=False, kid=False)
    assert_close(score["is"], torch.tensor(1.0))


def _numpy_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """The original code's computation (improved-gan's inception_score.py), in NumPy."""
    preds = np.exp(logits - logits.max(1, keepdims=True))
    preds /= preds.sum(1, keepdims=True)
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits) : ((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


@pytest.mark.parametrize(("n", "splits"), [(103, 10), (100, 10), (37, 1), (11, 4)])
def test_inception_score_has_equal_splits_and_the_population_std_of_the_original_code(n, splits):
    from sagan.evaluation.metrics import inception_score

    logits = torch.randn(n, 7, dtype=torch.float64) * 3
    order = torch.randperm(n, generator=torch.Generator().manual_seed(5))  # the seeded order of the samples
    mean, std = inception_score(logits, splits, seed=5)
    expected_mean, expected_std = _numpy_inception_score(logits[order].numpy(), splits)
    assert_close(mean, torch.tensor(expected_mean, dtype=torch.float32))
    assert_close(std, torch.tensor(expected_std, dtype=torch.float32))
    # 103 samples in 10 splits: parts of 10 or 11 images, never a last part of 3 (torch.chunk's 11 x 9 + 4)
    sizes = [(i + 1) * n // splits - i * n // splits for i in range(splits)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n
    out = SampleMetrics(fid=False, kid=False, is_splits=splits, seed=5)(torch.zeros(n, 2), logits.float(), None)
    assert_close(out["is"], mean, rtol=1e-5, atol=1e-5)


def test_inception_score_of_a_perfect_classifier_on_balanced_data_is_the_number_of_classes():
    labels = torch.arange(120) % 6
    logits = torch.nn.functional.one_hot(labels, 6).float() * 100.0  # certain and right
    score = _metrics(torch.randn(10, 4), torch.randn(120, 4), logits=logits, fid=False, kid=False, is_splits=1)
    assert_close(score["is"], torch.tensor(6.0))


def test_kid_of_identical_sets_is_near_zero_and_positive_for_different_sets():
    x = torch.randn(400, 8)
    same = _metrics(x, x, fid=False, inception_score=False, kid_subsets=20, kid_subset_size=200)["kid"]
    shifted = _metrics(x, x + 1.0, fid=False, inception_score=False, kid_subsets=20, kid_subset_size=200)["kid"]
    assert shifted > 1.0
    assert_close(same, torch.tensor(0.0), atol=0.01 * shifted.item(), rtol=0)  # ~0 on the scale of a real gap


def test_mode_coverage_and_kl_to_uniform():
    uniform = torch.nn.functional.one_hot(torch.arange(50) % 10, 10).float()
    out = _metrics(torch.randn(10, 2), torch.randn(50, 2), logits=uniform, fid=False, inception_score=False,
                   kid=False, modes=True)
    assert out["modes"].item() == 10
    assert_close(out["kl"], torch.tensor(0.0, dtype=torch.float64))
    collapsed = torch.nn.functional.one_hot(torch.full((50,), 3), 10).float()
    out = _metrics(torch.randn(10, 2), torch.randn(50, 2), logits=collapsed, fid=False, inception_score=False,
                   kid=False, modes=True)
    assert out["modes"].item() == 1
    assert_close(out["kl"], torch.tensor(np.log(10.0), dtype=torch.float64))


def test_shards_cover_every_index_once():
    for n, world in [(10, 3), (2, 4), (7, 1)]:
        parts = [list(shard(n, r, world)) for r in range(world)]
        assert sum(parts, []) == list(range(n))


# ------------------------------------------------------------------------------ real-statistics cache
def _quality(tmp_path, **kwargs) -> SampleQuality:
    defaults = dict(num_samples=40, batch_size=32, kid_subset_size=20, is_splits=2, cache_dir=str(tmp_path))
    return SampleQuality(features=TinyFeatures(), **{**defaults, **kwargs})


def _sample(z: torch.Tensor, y) -> torch.Tensor:
    return torch.tanh(z[:, :1, None, None].expand(-1, 1, 32, 32) + torch.linspace(-1, 1, 32))


def test_real_statistics_are_cached_reused_and_invalidated_by_the_transform(tmp_path):
    data = DigitsDataModule(image_size=32)
    first = _quality(tmp_path)
    first.prepare(data, torch.device("cpu"))
    assert first.real_computed == len(data.train_set) == first.features.images_seen == 1618
    files = sorted((tmp_path / "real").glob("*.pt"))
    assert len(files) == 1

    second = _quality(tmp_path)  # a later run: loads, computes no real feature
    second.prepare(DigitsDataModule(image_size=32), torch.device("cpu"))
    assert second.real_computed == 0 and second.features.images_seen == 0
    for key in ("sum", "cov_sum", "n", "kid_features"):
        assert_close(second.real[key], first.real[key], rtol=0, atol=0)
    results = second.evaluate(_sample, z_dim=4, num_classes=0, device=torch.device("cpu"))
    assert second.features.images_seen == 40  # only the generated images went through the extractor
    assert set(results) == {"fid", "is", "is_std", "kid", "kid_std"}

    third = _quality(tmp_path)  # another resolution is another transform: computed again
    third.prepare(DigitsDataModule(image_size=64), torch.device("cpu"))
    assert third.real_computed == 1618
    assert len(list((tmp_path / "real").glob("*.pt"))) == 2
    other_extractor = SampleQuality(features=TinyFeatures(scale=2.0), num_samples=40, kid_subset_size=20,
                                    cache_dir=str(tmp_path))
    other_extractor.prepare(DigitsDataModule(image_size=32), torch.device("cpu"))
    assert other_extractor.real_computed == 1618


def test_same_noise_gives_the_same_numbers(tmp_path):
    quality = _quality(tmp_path)
    quality.prepare(DigitsDataModule(), torch.device("cpu"))
    a = quality.evaluate(_sample, 4, 0, torch.device("cpu"))
    b = quality.evaluate(_sample, 4, 0, torch.device("cpu"))
    for key in a:
        assert_close(a[key], b[key], rtol=0, atol=0)


def test_rejects_kid_subsets_larger_than_the_samples(tmp_path):
    with pytest.raises(ValueError, match="kid_subset_size"):
        _quality(tmp_path, num_samples=10, kid_subset_size=20)


# ------------------------------------------------------------------------------------------ Inception
def test_missing_inception_weights_name_the_file_and_the_folder(tmp_path, monkeypatch):
    from sagan.errors import UsageError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UsageError) as error:
        InceptionFeatures()
    message = str(error.value)
    assert "\n" not in message and "pt_inception-2015-12-05-6726825d.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    with pytest.raises(UsageError, match="nowhere.pth"):
        InceptionFeatures(weights_path=str(tmp_path / "nowhere.pth"))


def test_inception_weights_are_fetched_hash_checked_into_torch_hub(tmp_path, monkeypatch):
    import hashlib

    from sagan.evaluation import features

    source = tmp_path / "mirror" / "weights.pth"
    source.parent.mkdir()
    source.write_bytes(b"inception weights stand-in" * 1000)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SAGAN_INCEPTION_URL", source.as_uri())  # file://: no network in tests
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    # a download whose hash is not the file name's is refused and leaves nothing behind
    with pytest.raises(UsageError, match=r"fetching file://.* failed \(the download's sha256 starts [0-9a-f]{8}, expected 6726825d"):
        features.find_inception_weights()
    assert not hub.exists() or not any(hub.iterdir())
    monkeypatch.setattr(features, "INCEPTION_SHA256_PREFIX", hashlib.sha256(source.read_bytes()).hexdigest()[:8])
    found = features.find_inception_weights()
    assert found == hub / "pt_inception-2015-12-05-6726825d.pth" and found.read_bytes() == source.read_bytes()
    assert [p.name for p in hub.iterdir()] == [found.name]  # no temporary file left
    found.write_bytes(b"kept")  # a file in place is used, never fetched again
    assert features.find_inception_weights() == found and found.read_bytes() == b"kept"
    # download=false (or no network) keeps the one-line message that says what to put where
    found.unlink()
    with pytest.raises(UsageError, match="Inception weights not found: place pt_inception-2015-12-05-6726825d.pth"):
        features.find_inception_weights(download=False)


def test_a_corrupt_inception_weights_file_is_one_line_before_the_run_directory(tmp_path, monkeypatch, capsys):
    from conftest import TINY_DIGITS

    from sagan.commands import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"PK\x03\x04 half a download")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY_DIGITS, "--run_root", str(tmp_path / "runs"),
              "--metrics.features=sagan.evaluation.features.InceptionFeatures"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert f"Inception weights file {hub}/pt_inception-2015-12-05-6726825d.pth cannot be used" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A state dict of the FID Inception's architecture with random weights (the real ones cannot be
    downloaded here): enough to check the plumbing against torchmetrics' own use of the network."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    mp = pytest.MonkeyPatch()
    mp.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state_dict: None)
    mp.setattr("torch_fidelity.feature_extractor_inceptionv3.torch.load", lambda *args, **kwargs: {})
    torch.manual_seed(0)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    mp.undo()
    path = tmp_path_factory.mktemp("hub") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_features_are_torchmetrics_fid_features(random_inception_weights, monkeypatch):
    from torchmetrics.image.fid import FrechetInceptionDistance

    monkeypatch.setenv("TORCH_HOME", str(random_inception_weights.parent.parent))  # not the hub folder
    extractor = InceptionFeatures(weights_path=str(random_inception_weights)).load()
    images = torch.rand(1, 1, 32, 32) * 2 - 1  # one image: 6 GFLOPs at 299x299
    features, logits = extractor(images)
    assert features.shape == (1, 2048) and logits.shape == (1, 1008)
    reference = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(random_inception_weights))
    as_uint8 = ((images + 1) * 127.5).round().to(torch.uint8).expand(-1, 3, -1, -1)
    assert_close(features, reference.inception(as_uint8))


# ------------------------------------------------------------------------------- distributed (gloo)
class _UnevenDigits(DigitsDataModule):
    """Rank 0 holds three validation batches, rank 1 one: a collective per batch would hang."""

    def val_dataloader(self):
        batches = 3 if self.trainer.global_rank == 0 else 1
        return torch.utils.data.DataLoader(torch.utils.data.Subset(self.val_set, range(8 * batches)), batch_size=8)


class _Record(L.Callback):
    """Writes each rank's logged `val/tiny_*` numbers and its real-feature work to <folder>/rank<r>.pt."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_validation_end(self, trainer, pl_module):
        quality = next(c for c in trainer.callbacks if isinstance(c, SampleQuality))
        metrics = {k: v.cpu() for k, v in trainer.callback_metrics.items() if k.startswith("val/tiny_")}
        torch.save({"metrics": metrics, "real": quality.real, "real_computed": quality.real_computed},
                   f"{self.folder}/rank{trainer.global_rank}.pt")


def _validate(folder, devices: int) -> None:
    from conftest import tiny

    from sagan.tasks.image import ImageGAN

    torch.manual_seed(0)  # the same weights in every process
    model = ImageGAN(tiny("generator-32-cond", num_classes=10), tiny("discriminator-32-cond", num_classes=10))
    quality = SampleQuality(features=TinyFeatures(), num_samples=45, batch_size=16, kid_subsets=10,
                            kid_subset_size=30, is_splits=3, cache_dir=str(folder / "cache"))
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        callbacks=[quality, _Record(str(folder))],
    )
    trainer.validate(model, datamodule=_UnevenDigits(batch_size=8, image_size=32))


def _rank_process(rank: int, folder, port: int) -> None:
    """One of two processes started by the test (Lightning sees LOCAL_RANK and joins them with gloo)."""
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK="0",
                      LOCAL_RANK=str(rank), RANK=str(rank))
    torch.set_num_threads(1)
    _validate(folder, devices=2)


def test_two_processes_give_the_single_process_numbers_with_uneven_batches(tmp_path):
    import socket

    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    _validate(single, devices=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_rank_process, args=(ddp, port), nprocs=2)  # each rank generates its share
    reference = torch.load(single / "rank0.pt", weights_only=True)
    assert set(reference["metrics"]) == {"val/tiny_fid", "val/tiny_is", "val/tiny_kid"}
    for rank in (0, 1):
        result = torch.load(ddp / f"rank{rank}.pt", weights_only=True)
        assert result["real_computed"] == 1618  # the ranks computed the real features together, in shares
        for key in ("sum", "cov_sum", "n", "kid_features"):
            assert_close(result["real"][key], reference["real"][key], rtol=1e-5, atol=1e-5)
        for name, value in reference["metrics"].items():
            assert_close(result["metrics"][name], value, rtol=1e-4, atol=1e-4)


def test_the_data_module_picks_the_extractor(tmp_path, monkeypatch):
    import lightning as L

    from datamodules.image.base import ImageDataModule
    from datamodules.image.stacked_digits import StackedDigitsDataModule
    from sagan.errors import UsageError
    from sagan.evaluation.features import DigitsFeatures, StackedDigitsFeatures

    def resolved(data):
        quality = SampleQuality(num_samples=40, kid_subset_size=20, cache_dir=str(tmp_path))  # features="data"
        quality.resolve(data)
        return quality.features

    assert type(resolved(DigitsDataModule())) is DigitsFeatures
    assert type(resolved(StackedDigitsDataModule())) is StackedDigitsFeatures
    assert resolved(L.LightningDataModule()) is None  # e.g. text: names no extractor, metrics off
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UsageError, match="pt_inception"):  # real image data: Inception, whose weights are missing
        resolved(ImageDataModule())
