"""Checkpoints and configs of earlier versions: class paths from before the package was reorganized load."""

import importlib

import pytest
import torch
import yaml
from conftest import EXPERIMENTS, TINY_DIGITS
from torch.testing import assert_close

from sagan.commands import main
from sagan.tasks.image import ImageGAN
from sagan.training.checkpoints import load_module, renamed_in, upgrade_class_path, upgrade_config


def _rewrite(ckpt, tmp_path, change) -> str:
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    change(checkpoint["hyper_parameters"])
    out = tmp_path / "old.ckpt"
    torch.save(checkpoint, out)
    return str(out)


def test_upgrade_class_paths():
    assert upgrade_class_path("sagan.module.GAN") == "sagan.tasks.image.ImageGAN"
    assert upgrade_class_path("sagan.features.DigitsFeatures") == "sagan.evaluation.features.DigitsFeatures"
    assert upgrade_class_path("sagan.augment.DiffAugment") == "sagan.layers.augment.DiffAugment"
    assert upgrade_class_path("sagan.losses.HingeLoss") == "sagan.losses.HingeLoss"  # did not move
    config = {"model": {"class_path": "sagan.text_module.TextGAN", "init_args": {"n": [1, "sagan.metrics.X"]}}}
    assert upgrade_config(config) == {
        "model": {"class_path": "sagan.tasks.text.TextGAN", "init_args": {"n": [1, "sagan.evaluation.metrics.X"]}}
    }
    assert renamed_in('Import path "sagan.module.GAN" does not exist') == [("sagan.module.GAN", "sagan.tasks.image.ImageGAN")]


@pytest.mark.parametrize(("old", "new"), [
    ("datamodules.digits.DigitsDataModule", "datamodules.image.digits.DigitsDataModule"),
    ("datamodules.image.ImageDataModule", "datamodules.image.base.ImageDataModule"),
    ("datamodules.repair.RepairDataModule", "datamodules.repair.damaged.RepairDataModule"),
    ("datamodules.text.TextDataModule", "datamodules.text.corpus.TextDataModule"),
    ("datamodules.audio.AudioDataModule", "datamodules.audio.base.AudioDataModule"),
    ("datamodules.videofolder.VideoFolderDataModule", "datamodules.video.folder.VideoFolderDataModule"),
    ("datamodules.image.digits.DigitsDataModule", "datamodules.image.digits.DigitsDataModule"),  # current: as it is
])
def test_data_modules_grouped_by_modality_keep_their_old_class_paths(old, new):
    assert upgrade_class_path(old) == new
    module, _, name = new.rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == name
    assert upgrade_config({"data": {"class_path": old}}) == {"data": {"class_path": new}}
    assert renamed_in(f'Import path "{old}" does not exist') == ([] if old == new else [(old, new)])


def test_a_checkpoint_naming_old_class_paths_still_loads(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"

    def to_old(hparams):
        hparams["_class_path"] = "sagan.module.GAN"

    old = load_module(_rewrite(ckpt, tmp_path, to_old), kind=ImageGAN)
    new = load_module(ckpt, kind=ImageGAN)
    z = torch.randn(2, new.generator.z_dim)
    y = torch.tensor([1, 2])
    assert_close(old(z, y), new(z, y), rtol=0, atol=0)
    main(["sample", "--ckpt", str(tmp_path / "old.ckpt"), "--n", "2", "--out", str(tmp_path / "s")])
    assert (tmp_path / "s" / "grid.png").is_file()


def test_a_checkpoint_naming_an_unknown_class_is_one_line(trained_run, tmp_path, capsys):
    def to_unknown(hparams):
        hparams["_class_path"] = "sagan.nowhere.Model"

    path = _rewrite(trained_run / "checkpoints" / "last.ckpt", tmp_path, to_unknown)
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--ckpt", path])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "sagan.nowhere.Model" in err


def test_a_config_naming_an_old_class_path_says_where_it_went(tmp_path, capsys):
    config = yaml.safe_load((EXPERIMENTS / "sagan_digits.yaml").read_text())
    config["model"]["class_path"] = "sagan.module.GAN"
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(config))
    args = [a if a != str(EXPERIMENTS / "sagan_digits.yaml") else str(old) for a in TINY_DIGITS]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--run_root", str(tmp_path / "runs"), "--tracker=none"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sagan.tasks.image.ImageGAN" in err
    assert not (tmp_path / "runs").exists()


def test_sagan_networks_saved_before_the_attention_option_get_the_compact_block():
    old = {"generator": {"class_path": "sagan.models.sagan.SAGANGenerator", "init_args": {"width": 2}},
           "discriminator": {"class_path": "sagan.models.sagan.SAGANDiscriminator", "init_args": {"width": 2}}}
    upgraded = upgrade_config(old)
    assert upgraded["generator"]["init_args"] == {"width": 2, "attention": "compact"}
    assert upgraded["discriminator"]["init_args"]["attention"] == "compact"
    new = {"generator": {"class_path": "sagan.models.sagan.SAGANGenerator", "init_args": {"attention": "official"}}}
    assert upgrade_config(new) == new
