"""Repair metrics against hand computation: compositing, PSNR, SSIM, hole L1, buckets, FID / KID per bucket, LPIPS."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch.testing import assert_close

from sagan.errors import UsageError
from sagan.evaluation.features import FeatureExtractor
from sagan.evaluation.metrics import SampleMetrics
from sagan.evaluation.repair_metrics import RepairEvaluation, composite, find_lpips_weights, per_image, repair_metrics


def _pair(n: int = 2, c: int = 3, h: int = 16, w: int = 20, noise: float = 0.3):
    clean = torch.rand(n, c, h, w) * 2 - 1
    return (clean + noise * torch.randn_like(clean)).clamp(-1, 1), clean


def _ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """SSIM by hand: Gaussian window sigma 1.5 truncated at 3.5 sigma, mirrored borders (torch's "reflect"),
    the map averaged over the whole image and the channels."""
    blur = lambda z: gaussian_filter(z, 1.5, mode="mirror", truncate=3.5)  # noqa: E731
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    maps = []
    for x, y in zip(a, b):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        maps.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(maps))


def test_composite_keeps_known_pixels_bit_exact():
    damaged, mask = torch.rand(2, 3, 8, 8) * 2 - 1, (torch.rand(2, 1, 8, 8) < 0.4).float()
    prediction = torch.full_like(damaged, float("nan"))
    prediction[:, :, ::2] = float("inf")
    out = composite(damaged, prediction, mask)
    known = mask.expand_as(damaged) == 0
    assert torch.equal(out[known], damaged[known])
    assert_close(out[~known], prediction[~known], equal_nan=True)


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_ssim_and_hole_l1_match_hand_computation(channels):
    output, clean = _pair(c=channels)
    mask = (torch.rand(2, 1, 16, 20) < 0.3).float()
    values = per_image(output, clean, mask)
    o, c, m = output.double().numpy(), clean.double().numpy(), mask.double().numpy()
    for i in range(2):
        mse = np.mean((o[i] - c[i]) ** 2)
        assert_close(values["psnr"][i].double(), torch.tensor(10 * np.log10(4.0 / mse), dtype=torch.float64), rtol=1e-5, atol=1e-4)
        assert_close(values["ssim"][i].double(), torch.tensor(_ssim_reference(o[i], c[i]), dtype=torch.float64), rtol=1e-4, atol=1e-5)
        holes = np.broadcast_to(m[i], o[i].shape)
        l1 = np.abs(o[i] - c[i])[holes == 1].mean() / 2  # [0, 1] units
        assert_close(values["l1_hole"][i].double(), torch.tensor(l1, dtype=torch.float64), rtol=1e-5, atol=1e-6)
        assert_close(values["hole_ratio"][i].double(), torch.tensor(m[i].mean(), dtype=torch.float64))


def test_an_exact_image_is_capped_and_an_image_without_holes_has_no_hole_l1():
    _, clean = _pair(n=1)
    values = per_image(clean, clean, torch.zeros(1, 1, 16, 20))
    assert values["psnr"].item() == 100.0 and values["ssim"].item() == pytest.approx(1.0)
    assert values["l1_hole"].isnan().all()
    assert repair_metrics(clean, clean, torch.zeros(1, 1, 16, 20)).keys() == {"val/psnr", "val/ssim"}


def test_metrics_are_reported_per_bucket():
    output, clean = _pair(n=3)
    mask = torch.zeros(3, 1, 16, 20)
    mask[0, :, :4] = 1  # ratio 0.25: small
    mask[1, :, :8] = 1  # 0.5: large
    mask[2, :, :14] = 1  # 0.875: neither bucket, counted over all images only
    values = per_image(output, clean, mask)
    found = repair_metrics(output, clean, mask, prefix="test/")
    for name in ("psnr", "ssim", "l1_hole"):
        assert_close(found[f"test/{name}_small"], values[name][0])
        assert_close(found[f"test/{name}_large"], values[name][1])
        assert_close(found[f"test/{name}"], values[name].mean())
    assert "val/psnr_small" not in repair_metrics(output, clean, mask, buckets={})


class _MeanColor(FeatureExtractor):
    """A stand-in extractor: per-channel means and standard deviations as features."""

    num_features, num_classes, metric_prefix, fingerprint = 2, 1, "toy_", "toy-v1"

    def forward(self, x):
        # x: [N, 1, H, W] -> ([N, 2], [N, 1])
        features = torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)
        return features, features[:, :1]


class _Data:
    def __init__(self, n: int = 40):
        generator = torch.Generator().manual_seed(1)
        images = torch.rand(n, 1, 12, 12, generator=generator) * 2 - 1
        self.train_set = torch.utils.data.TensorDataset(images, torch.zeros(n, dtype=torch.long))
        self.fingerprint, self.num_workers = "toy-data", 0


def test_fid_and_kid_are_computed_per_bucket_against_the_training_statistics(tmp_path):
    # the default KID subset size (1,000) shrinks to the 10 images of a bucket
    evaluation = RepairEvaluation(_MeanColor(), num_real=None, kid_subsets=5, cache_dir=str(tmp_path))
    evaluation.prepare(_Data(), torch.device("cpu"))
    outputs, cleans, masks = [], [], []
    for i in range(2):
        output, clean = _pair(n=10, c=1, h=12, w=12)
        mask = torch.zeros(10, 1, 12, 12)
        mask[0::2, :, :3] = 1  # ratio 0.25: small
        mask[1::2, :, :7] = 1  # ratio 0.58: large
        evaluation.update(output, clean, mask)
        outputs.append(output), cleans.append(clean), masks.append(mask)
    found = evaluation.compute()
    output = torch.cat(outputs)
    features = _MeanColor()(output)[0]
    for bucket, chosen in (("small", slice(0, None, 2)), ("large", slice(1, None, 2))):
        expected = SampleMetrics(inception_score=False, kid_subsets=5, kid_subset_size=10)(
            features[chosen], features[chosen][:, :1], evaluation.quality.real
        )
        assert_close(found[f"val/toy_fid_{bucket}"], expected["fid"])
        assert_close(found[f"val/toy_kid_{bucket}"], expected["kid"])
    assert_close(found["val/psnr_small"], per_image(output, torch.cat(cleans), torch.cat(masks))["psnr"][0::2].mean())
    evaluation.reset()
    assert evaluation.compute() == {}


def test_lpips_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UsageError, match="alexnet-owt-7be5be79.pth"):
        RepairEvaluation(None, lpips=True)
    assert RepairEvaluation(None).lpips_weights is None  # by default: LPIPS only when the file is there
    assert find_lpips_weights("vgg", required=False) is None


def test_lpips_with_a_local_backbone_file(tmp_path, monkeypatch):
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    features = {}  # a stand-in for torchvision's AlexNet file: random convolutions of the right shapes
    for index, shape in shapes.items():
        features[f"{index}.weight"], features[f"{index}.bias"] = torch.randn(shape) * 0.05, torch.zeros(shape[0])
    (tmp_path / "checkpoints").mkdir()
    torch.save({f"features.{k}": v for k, v in features.items()}, tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    evaluation = RepairEvaluation(None, lpips=True)
    evaluation.prepare(None, torch.device("cpu"))
    assert_close(evaluation.lpips.net.slice1[0].weight, features["0.weight"])  # the file's backbone
    output, clean = _pair(n=2, c=1, h=32, w=32)
    mask = torch.ones(2, 1, 32, 32)
    evaluation.update(clean, clean, mask)
    evaluation.update(output, clean, mask)
    lpips = torch.cat(evaluation._values["lpips"])
    assert_close(lpips[:2], torch.zeros(2), rtol=0, atol=1e-6) and (lpips[2:] > 0).all()
    assert "val/lpips_large" not in evaluation.compute() and "val/lpips" in evaluation.compute()


def test_fewer_real_images_for_smoke_runs(tmp_path):
    evaluation = RepairEvaluation(_MeanColor(), cache_dir=str(tmp_path))
    evaluation.prepare(_Data(), torch.device("cpu"), num_real=16)  # e.g. under fast_dev_run
    assert int(evaluation.quality.real["n"]) == 16 and len(evaluation.quality.real["kid_features"]) == 16


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(num_real=1), "num_real"), (dict(kid_real=0), "kid_real"), (dict(kid_subsets=0), "kid_subsets"),
     (dict(kid_subset_size=1), "kid_subset_size"), (dict(batch_size=0), "batch_size"), (dict(lpips_net="resnet"), "lpips_net")],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RepairEvaluation(None, **kwargs)
