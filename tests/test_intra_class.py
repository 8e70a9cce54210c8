"""Intra-class FID and the within-class pixel spread against independent computations."""

import numpy as np
import pytest
import torch
from test_metrics import TinyFeatures, _closed_form_fid, _quality
from torch.testing import assert_close

from datamodules.image.digits import DigitsDataModule
from sagan.errors import UsageError
from sagan.evaluation.intra_class import class_statistics, intra_class_fid
from sagan.evaluation.metrics import SampleMetrics, real_statistics
from sagan.evaluation.variety import class_pixel_std, generated_class_pixel_std, real_class_pixel_std


def test_class_statistics_are_per_class_moment_sums():
    features, labels = torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 3, (30,))
    stats = class_statistics(features, labels, 4)
    for c in range(4):
        mine = features[labels == c]
        assert_close(stats["class_sum"][c], mine.sum(0))
        assert_close(stats["class_cov_sum"][c], mine.T @ mine)
        assert int(stats["class_n"][c]) == len(mine)
    assert int(stats["class_n"][3]) == 0


def test_intra_class_fid_sees_classes_drawn_in_each_others_place():
    """Two classes far apart: samples with the right labels have the overall FID and a small IFID;
    with swapped labels the overall FID cannot tell, the IFID can. Each class's term is the closed form."""
    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g) + 6])
    labels = torch.cat([torch.zeros(400), torch.ones(400)]).long()
    fake = torch.cat([torch.randn(300, 3, generator=g) * 1.2, torch.randn(300, 3, generator=g) + 6.5])
    fake_labels = torch.cat([torch.zeros(300), torch.ones(300)]).long()
    stats = class_statistics(real, labels, 2)
    right = intra_class_fid(fake, fake_labels, stats)
    expected = np.mean([_closed_form_fid(fake[fake_labels == c].double().numpy(), real[labels == c].double().numpy())
                        for c in (0, 1)])
    assert_close(right.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-3, atol=1e-4)
    swapped = intra_class_fid(fake, 1 - fake_labels, stats)
    assert swapped > 50 * right
    overall = SampleMetrics(inception_score=False, kid=False)(fake, torch.zeros(600, 2), real_statistics(real, 10))
    assert overall["fid"] < 1.0  # the whole set matches either way


def test_sample_quality_logs_ifid_for_a_conditional_model(tmp_path):
    quality = _quality(tmp_path, intra_class_fid=True, num_samples=200, kid_subset_size=20)
    data = DigitsDataModule(image_size=32, use_labels=True)
    quality.prepare(data, torch.device("cpu"))
    assert quality.real["class_n"].sum() == 1618 and (quality.real["class_n"] > 150).all()
    # a "generator" that draws class c as the real image i of class c: every class gets its own digits
    by_class = [torch.stack([data.train_set[i][0] for i in range(len(data.train_set)) if data.train_set[i][1] == c])
                for c in range(10)]
    counters = [0] * 10

    def faithful(z, y):
        out = []
        for label in y.tolist():
            out.append(by_class[label][counters[label] % len(by_class[label])])
            counters[label] += 1
        return torch.stack(out)

    good = quality.evaluate(faithful, 4, 10, torch.device("cpu"))
    counters[:] = [0] * 10
    shifted = quality.evaluate(lambda z, y: faithful(z, (y + 1) % 10), 4, 10, torch.device("cpu"))
    assert good["ifid"] < shifted["ifid"] / 3
    unconditional = quality.evaluate(lambda z, y: faithful(z, torch.zeros(len(z), dtype=torch.long)), 4, 0,
                                     torch.device("cpu"))
    assert "ifid" not in unconditional
    again = _quality(tmp_path, intra_class_fid=True, num_samples=200, kid_subset_size=20)
    again.prepare(DigitsDataModule(image_size=32, use_labels=True), torch.device("cpu"))  # from the cache
    assert again.real_computed == 0 and "class_n" in again.real


def test_intra_class_fid_too_large_for_memory_is_refused_at_start_up(tmp_path):
    class Wide(TinyFeatures):
        num_features = 20_000  # 10 classes x 20,000^2 x 8 bytes = 32 GB

    quality = _quality(tmp_path, intra_class_fid=True)
    quality.features = Wide()
    with pytest.raises(UsageError, match="intra_class_fid"):
        quality.prepare(DigitsDataModule(use_labels=True), torch.device("cpu"))


def test_class_pixel_std_is_numpys_per_pixel_std():
    images, labels = torch.randn(20, 1, 4, 4), torch.tensor([0, 1] * 10)
    std = class_pixel_std(images, labels, 3)
    for c in (0, 1):
        assert_close(std[c].item(), float(np.std(images[labels == c].numpy(), axis=0, ddof=1).mean()), rtol=1e-5, atol=0)
    assert torch.isnan(std[2])
    constant = generated_class_pixel_std(lambda z, y: y[:, None, None, None].float().expand(-1, 1, 2, 2), 4, 3, 10)
    assert_close(constant, torch.zeros(3, dtype=torch.float64))  # a generator that ignores z has no spread
    data = DigitsDataModule(use_labels=True)
    data.setup("fit")
    real = real_class_pixel_std(data.train_set, 10)  # real digits of one class: 0.2-0.33
    assert ((real > 0.19) & (real < 0.34)).all(), real
