"""The digits classifier behind the offline digits metrics, and the stacked-digits mode counter."""

import torch
from torch.testing import assert_close

from datamodules.image.digits import digits_tensors, held_out_split
from datamodules.image.stacked_digits import StackedDigitsDataModule
from sagan.evaluation.features import DigitsFeatures, StackedDigitsFeatures, default_cache_dir


def test_digits_classifier_is_accurate_cached_and_reused():
    first = DigitsFeatures().load()  # trained once per test session (seeded), then read from the cache
    assert first.path.parent == default_cache_dir() and first.path.is_file()
    assert first.accuracy >= 0.97  # on the held-out 10% of the digits
    assert not list(first.path.parent.glob(".*.tmp"))  # written atomically
    mtime = first.path.stat().st_mtime_ns
    second = DigitsFeatures().load()
    assert second.path.stat().st_mtime_ns == mtime and second.fingerprint == first.fingerprint
    assert second.accuracy == first.accuracy and not second.train().net.training  # a fixed instrument
    images, labels = digits_tensors(32, 1)
    _, held = held_out_split(labels, 0.1)
    with torch.no_grad():
        features, logits = second(images[held])
    assert features.shape == (len(held), 128) and logits.shape == (len(held), 10)
    assert (logits.argmax(1) == labels[held]).float().mean() >= 0.97
    # colour and other sizes: averaged to gray, resized to 32x32
    rgb64 = torch.nn.functional.interpolate(images[held[:8]], size=64, mode="bilinear").expand(-1, 3, -1, -1)
    with torch.no_grad():
        assert (second(rgb64)[1].argmax(1) == labels[held[:8]]).float().mean() >= 0.75


def test_stacked_features_classify_each_channel():
    data = StackedDigitsDataModule(num_train=10, num_val=200)
    data.setup()
    x = torch.stack([data.val_set[i][0] for i in range(200)])
    y = torch.stack([data.val_set[i][1] for i in range(200)])
    extractor = StackedDigitsFeatures().load()
    with torch.no_grad():
        features, logits = extractor(x)
        per_channel = [DigitsFeatures().load()(x[:, c : c + 1])[1].argmax(1) for c in range(3)]
    assert features.shape == (200, 384) and logits.shape == (200, 1000)
    assert_close(logits.exp().sum(1), torch.ones(200))  # joint probabilities over the 1,000 triples
    assert torch.equal(logits.argmax(1), 100 * per_channel[0] + 10 * per_channel[1] + per_channel[2])
    assert (logits.argmax(1) == y).float().mean() >= 0.9


def test_loading_a_cached_classifier_leaves_the_global_random_stream_alone():
    # a run's training noise must not depend on whether the classifier was trained (first run) or read from
    # the cache (later runs): building the network to load the weights into draws its throwaway init
    DigitsFeatures().load()  # trained or read: cached from here on
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    DigitsFeatures().load()
    assert_close(torch.rand(4), expected, rtol=0, atol=0)
