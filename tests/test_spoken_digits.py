"""The embedded spoken digits: the packed file, its decoding, the fixed splits and the data module."""

import importlib.util
import tomllib

import numpy as np
import pytest
import torch
from conftest import REPO
from torch.testing import assert_close

from datamodules.audio.spoken_digits import PACKED, SpokenDigitsDataModule, load_packed, mu_law_decode, spoken_digits


def _builder():
    """scripts/make_spoken_digits.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_spoken_digits", REPO / "scripts" / "make_spoken_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packed_file_holds_two_thousand_clips_of_ten_digits_and_ships_with_the_package():
    packed = load_packed()
    assert int(packed["sample_rate"]) == 8000 and packed["codes"].dtype == np.uint8
    lengths = np.diff(packed["starts"])
    assert len(lengths) == 2000 and packed["starts"][-1] == len(packed["codes"])
    assert 0 < lengths.min() and lengths.max() <= 7200  # every word fits in 0.9 s
    assert np.bincount(packed["labels"]).tolist() == [200] * 10
    assert PACKED.stat().st_size < 6e6
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(PACKED.match(f"datamodules/{pattern}") for pattern in package_data["datamodules"])


def test_mu_law_decoding_inverts_the_builders_encoding():
    x = np.linspace(-0.95, 0.95, 1001)
    codes = _builder().mu_law_encode(x)
    decoded = mu_law_decode(codes).astype(np.float64)
    # 8-bit mu-law: steps of 2 / 255 in the companded domain, so rounding moves a sample by at most half a step
    companded = lambda v: np.sign(v) * np.log1p(255 * np.abs(v)) / np.log1p(255)  # noqa: E731
    assert np.abs(companded(decoded) - companded(x)).max() <= 1 / 255 + 1e-6
    assert_close(mu_law_decode(np.array([0, 255], np.uint8)), np.array([-1.0, 1.0], np.float32))


def test_splits_are_fixed_by_voice_and_deterministic():
    packed = load_packed()
    voices = packed["variants"][packed["speakers"]]
    assert not set(voices[packed["val"]]) & set(voices[~packed["val"]])  # held-out voices are never trained on
    x, y = spoken_digits("train")
    x2, y2 = spoken_digits("train")
    assert x.shape == (1670, 1, 8192) and x.dtype == torch.float32
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.abs().max() <= 1 and 0.4 < x.abs().amax(dim=2).min()  # every clip is audible
    val, val_y = spoken_digits("val")
    assert len(val) == 330 and torch.bincount(val_y).tolist() == [33] * 10


def test_placement_puts_the_decoded_word_at_its_offset():
    packed = load_packed()
    first_train = int(np.flatnonzero(~packed["val"])[0])
    word = torch.from_numpy(mu_law_decode(packed["codes"][packed["starts"][first_train] : packed["starts"][first_train + 1]]))
    n = len(word)
    start, _ = spoken_digits("train", 8000, "start")
    center, _ = spoken_digits("train", 8000, "center")
    assert_close(start[0, 0, :n], word, rtol=0, atol=0)
    assert start[0, 0, n:].abs().max() == 0
    assert_close(center[0, 0, (8000 - n) // 2 : (8000 - n) // 2 + n], word, rtol=0, atol=0)
    shifted, _ = spoken_digits("train", 8192, "random", placement_seed=1)
    assert not torch.equal(shifted, spoken_digits("train", 8192, "random", placement_seed=0)[0])


def test_data_module_links_facts_and_names_its_clips():
    data = SpokenDigitsDataModule(batch_size=4)
    assert (data.sample_rate, data.num_samples, data.num_classes) == (8000, 8192, 10)
    assert SpokenDigitsDataModule(use_labels=False).num_classes == 0
    data.setup("fit")
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 1, 8192) and y.shape == (4,)
    other = SpokenDigitsDataModule(num_samples=16384).fingerprint
    assert data.fingerprint != other and data.fingerprint != SpokenDigitsDataModule(placement="center").fingerprint


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(num_samples=4096), "num_samples must be in"), (dict(placement="end"), "placement"), (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments_name_the_allowed_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpokenDigitsDataModule(**kwargs)
