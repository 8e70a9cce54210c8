"""CIFAR10DataModule on batches written in the real python-pickle format."""

import os
import pickle
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from conftest import EXPERIMENTS
from datafixtures import cifar_arrays, make_cifar10
from torch.testing import assert_close

from datamodules.image.cifar10 import CIFAR10DataModule, read_batch
from sagan.commands import main
from sagan.errors import UsageError


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return make_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=4)


def written(seeds) -> tuple[torch.Tensor, torch.Tensor]:
    """What the fixture wrote for these batches, as float images in [-1, 1] and labels."""
    data, labels = zip(*(cifar_arrays(4, seed) for seed in seeds))
    images = torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32)).float() / 127.5 - 1
    return images, torch.tensor(sum(labels, []))


def stacked(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def test_images_and_labels_are_the_ones_written(cifar_root):
    data = CIFAR10DataModule(str(cifar_root), batch_size=4, num_workers=0)
    data.setup()
    images, labels = stacked(data.train_set)
    expected_images, expected_labels = written(range(5))  # data_batch_1..5
    assert_close(images, expected_images, rtol=0, atol=0)
    assert_close(labels, expected_labels)
    images, labels = stacked(data.val_set)
    expected_images, expected_labels = written([5])  # test_batch
    assert_close(images, expected_images, rtol=0, atol=0)
    assert_close(labels, expected_labels)
    assert data.num_classes == 10
    assert CIFAR10DataModule(str(cifar_root), use_labels=False).num_classes == 0


def test_agrees_with_torchvision_reading_the_same_batches(cifar_root, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)  # fixture md5s differ
    data = CIFAR10DataModule(str(cifar_root), batch_size=4, num_workers=0)
    data.setup()
    reference = torchvision.datasets.CIFAR10(str(cifar_root), train=True)
    images, labels = stacked(data.train_set)
    assert_close(images, torch.from_numpy(reference.data).permute(0, 3, 1, 2).float() / 127.5 - 1, rtol=0, atol=0)
    assert labels.tolist() == reference.targets and reference.classes[:2] == ["airplane", "automobile"]


def test_resize_and_gray(cifar_root):
    data = CIFAR10DataModule(str(cifar_root), batch_size=4, image_size=64, channels=1, num_workers=0)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 1, 64, 64) and y.dtype == torch.long
    assert x.min() >= -1 and x.max() <= 1
    assert data.fingerprint == "cifar10:train:bilinear64:64x64:1ch"
    assert CIFAR10DataModule(str(cifar_root)).fingerprint == "cifar10:train:native:32x32:3ch"


def test_missing_batches_error_names_the_layout(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    with pytest.raises(UsageError) as error:
        CIFAR10DataModule(str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and "cifar-10-batches-py/data_batch_1..5 and test_batch" in message
    assert "missing: data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch" in message
    assert "cifar-10-python.tar.gz" in message


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}, protocol=2))
    with pytest.raises(UsageError, match="refusing to load"):
        read_batch(path)
    assert not marker.exists()


def test_a_garbled_batch_is_a_clear_error(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(UsageError, match="not a CIFAR-10 python batch"):
        read_batch(path)


def _cli_error(capsys, tmp_path, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([
            "fit", "--config", str(EXPERIMENTS / "sagan_cifar10.yaml"), "--run_root", str(tmp_path / "runs"),
            "--tracker=none", "--trainer.enable_progress_bar=false", "--metrics.features=null", *args,
        ])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_cli_without_the_files_is_one_line_exit_2(tmp_path, capsys):
    line = _cli_error(capsys, tmp_path, f"--data.init_args.root={tmp_path}")
    assert "CIFAR-10 not found" in line and "cifar-10-batches-py" in line


def test_failed_download_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    line = _cli_error(capsys, tmp_path, f"--data.init_args.root={tmp_path}", "--data.init_args.download=true")
    assert "CIFAR-10 download failed" in line and "name resolution" in line and "cifar-10-python.tar.gz" in line
