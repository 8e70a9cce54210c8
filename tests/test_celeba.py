"""CelebADataModule on a generated tree in torchvision's exact layout."""

import pytest
import torch
import torchvision
from conftest import EXPERIMENTS
from datafixtures import CELEBA_PARTITIONS, make_celeba
from PIL import Image

from datamodules.image.celeba import CelebADataModule
from sagan.commands import main
from sagan.errors import UsageError


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return make_celeba(tmp_path_factory.mktemp("celeba"))


def names(paths) -> list[str]:
    return [path.name for path in paths]


def test_splits_are_the_official_partitions(celeba_root):
    data = CelebADataModule(str(celeba_root), batch_size=2, num_workers=0)
    expected = {
        split: [f"{i:06d}.jpg" for i, p in enumerate(CELEBA_PARTITIONS, start=1) if p == part]
        for split, part in (("train", 0), ("valid", 1), ("test", 2))
    }
    for split in ("train", "valid", "test"):
        assert names(data.split_files(split)[0]) == expected[split]
    assert len(data.split_files("all")[0]) == len(CELEBA_PARTITIONS)
    data.setup()
    assert names(data.train_set.paths) == expected["train"] and names(data.val_set.paths) == expected["valid"]
    everything = CelebADataModule(str(celeba_root), train_split="all", batch_size=2, num_workers=0)
    everything.setup()
    assert len(everything.train_set) == len(CELEBA_PARTITIONS)


def test_partitions_agree_with_torchvision_reading_the_same_tree(celeba_root, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.CelebA, "_check_integrity", lambda self: True)  # fixture md5s differ
    data = CelebADataModule(str(celeba_root), batch_size=2, num_workers=0)
    for split in ("train", "valid", "test"):
        reference = torchvision.datasets.CelebA(
            str(celeba_root), split=split, target_type=["attr", "identity", "bbox", "landmarks"]
        )
        assert names(data.split_files(split)[0]) == reference.filename
        assert reference.attr.shape == (len(reference.filename), 40)


@pytest.mark.parametrize("size", [64, 128])
def test_crop_resize_shapes_range_and_no_labels(celeba_root, size):
    data = CelebADataModule(str(celeba_root), batch_size=4, image_size=size, num_workers=0)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 3, size, size) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert y.tolist() == [0, 0, 0, 0] and data.num_classes == 0


def test_the_178_crop_cuts_away_the_top_and_bottom(celeba_root):
    source = celeba_root / "celeba" / "img_align_celeba" / "000001.jpg"
    with Image.open(source) as image:
        assert image.size == (178, 218) and image.getpixel((89, 2))[0] > 240  # a red band outside the crop
    data = CelebADataModule(str(celeba_root), batch_size=2, image_size=64, num_workers=0)
    data.setup()
    red = data.train_set[0][0][0]
    assert red.max() < 0  # none of the band's full red (+1) survived the crop


def test_gray_channel_option(celeba_root):
    data = CelebADataModule(str(celeba_root), channels=1, batch_size=2, num_workers=0)
    data.setup()
    assert data.train_set[0][0].shape == (1, 64, 64)


def test_fingerprint(celeba_root):
    data = CelebADataModule(str(celeba_root), image_size=128)
    assert data.fingerprint == "celeba:train:crop178-bicubic128:128x128:3ch"
    assert CelebADataModule(str(celeba_root), train_split="all").fingerprint.startswith("celeba:all:")


def test_missing_files_error_names_the_layout(tmp_path):
    with pytest.raises(UsageError) as error:
        CelebADataModule(str(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert f"{tmp_path}/celeba/img_align_celeba/*.jpg" in message and "list_eval_partition.txt" in message
    assert "mmlab.ie.cuhk.edu.hk" in message and "download=true" in message


def test_malformed_partition_file_names_the_line(tmp_path):
    root = make_celeba(tmp_path, partitions=(0, 0, 1))
    (root / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg train\n")
    data = CelebADataModule(str(root), num_workers=0)
    with pytest.raises(UsageError, match="list_eval_partition.txt:2: expected"):
        data.setup()


def _cli_error(capsys, tmp_path, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([
            "fit", "--config", str(EXPERIMENTS / "sagan_celeba.yaml"), "--run_root", str(tmp_path / "runs"),
            "--tracker=none", "--trainer.enable_progress_bar=false", "--metrics.features=null", *args,
        ])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert not list(tmp_path.rglob("*.ckpt"))
    return lines[0]


def test_cli_without_the_files_is_one_line_exit_2(tmp_path, capsys):
    line = _cli_error(capsys, tmp_path, f"--data.init_args.root={tmp_path / 'nothing'}")
    assert "CelebA not found" in line and "img_align_celeba" in line and "list_eval_partition.txt" in line


def test_failed_download_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(torchvision.datasets.celeba, "download_file_from_google_drive", offline)
    line = _cli_error(capsys, tmp_path, f"--data.init_args.root={tmp_path / 'data'}", "--data.init_args.download=true")
    assert "CelebA download failed (Network is unreachable" in line or "CelebA download failed ([Errno 101]" in line
    assert "mmlab.ie.cuhk.edu.hk" in line


def test_a_binary_partition_file_is_one_line(tmp_path):
    root = make_celeba(tmp_path, partitions=(0, 0, 1))
    (root / "celeba" / "list_eval_partition.txt").write_bytes(b"PK\x03\x04\x14\x00\x08\x08\xff\xfe\x00binary")
    data = CelebADataModule(str(root), num_workers=0)
    with pytest.raises(UsageError) as error:
        data.setup()
    message = str(error.value)
    assert "\n" not in message and "list_eval_partition.txt: not a text file" in message
    assert "expected lines '<image>.jpg <0|1|2>'" in message
