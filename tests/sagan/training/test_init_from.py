"""`sagan fit --init_from CKPT`: a new run (fresh optimizers, counters, run directory) whose networks start
from another run's weights; class embeddings re-initialized for another number of classes; anything else
that does not fit refused in one line before a run directory exists."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_DIGITS, fit, fit_repair
from datafixtures import make_class_folder
from torch.testing import assert_close

import sagan.models
from sagan.commands import main
from sagan.errors import UsageError
from sagan.training.init_from import _class_embedding, init_from

FROZEN = ["--model.lr_g=0", "--model.lr_d=0"]  # Adam with a zero learning rate leaves every weight as it is
NETWORKS = ("generator.", "discriminator.", "generator_ema.")


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The networks' parameters of a checkpoint (buffers move in training: batch statistics, power iterations)."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    return {key: value for key, value in state.items() if key.startswith(NETWORKS) and key.endswith(("weight", "bias", "_orig", "gamma"))}


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("sagan: error")]


def test_a_new_run_starts_from_the_checkpoints_networks_with_fresh_optimizers_and_counters(trained_run, tmp_path, capsys):
    source = trained_run / "checkpoints" / "last.ckpt"
    run = fit(tmp_path, "--init_from", str(source), "--g_iters=1", *FROZEN)
    assert run.parent.parent == tmp_path / "runs" and run != trained_run
    assert f"initialized from {source.resolve()}: generator, discriminator and EMA generator weights" in capsys.readouterr().err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["init_from"] == str(source.resolve())  # the source, recorded
    new = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    old = torch.load(source, map_location="cpu", weights_only=True)
    assert new["global_step"] == 2 and old["global_step"] == 12  # 1 generator iteration, counted from 0
    for optimizer in new["optimizer_states"]:  # one step each: Adam's moments are this run's own
        assert {float(s["step"]) for s in optimizer["state"].values()} == {1.0}
    assert_close(_weights(run / "checkpoints" / "last.ckpt"), _weights(source), rtol=0, atol=0)
    resumed = fit(tmp_path, "--resume", "last", "--g_iters=2")  # continuing the fine-tuning run keeps the record
    assert resumed == run
    assert yaml.safe_load((run / "config.yaml").read_text())["init_from"] == str(source.resolve())


def _three_classes(tmp_path: Path) -> list[str]:
    """Command-line options that train on a folder of three classes (the source checkpoint has ten)."""
    folder = make_class_folder(tmp_path / "shapes", {"a": 3, "b": 3, "c": 3}, size=(32, 32))
    return [
        "--data=datamodules.image.folder.ImageFolderDataModule", f"--data.init_args.root={folder}",
        "--data.init_args.image_size=32", "--data.init_args.channels=1", "--data.init_args.use_labels=true",
        "--data.init_args.batch_size=4", "--data.init_args.num_workers=0", "--data.init_args.val_fraction=0.3",
        "--metrics.features=null",
    ]


def test_another_number_of_classes_reinitializes_the_class_embeddings_only(trained_run, tmp_path, capsys):
    source = trained_run / "checkpoints" / "last.ckpt"
    run = fit(tmp_path, "--init_from", str(source), "--g_iters=1", *FROZEN, *_three_classes(tmp_path))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("initialized from")]
    assert len(lines) == 1 and "class embeddings re-initialized (10 classes in the checkpoint, 3 in this data" in lines[0]
    new, old = _weights(run / "checkpoints" / "last.ckpt"), _weights(source)
    resized = {key for key in new if new[key].shape != old[key].shape}
    assert resized and all(".gain." in key or ".bias.weight" in key or ".embed." in key for key in resized), resized
    assert {new[key].shape[0] for key in resized} == {3}
    assert_close({k: v for k, v in new.items() if k not in resized}, {k: v for k, v in old.items() if k not in resized}, rtol=0, atol=0)


def test_init_classes_maps_each_new_class_to_an_old_ones_embeddings(trained_run, tmp_path, capsys):
    source = trained_run / "checkpoints" / "last.ckpt"
    run = fit(tmp_path, "--init_from", str(source), "--init_classes=[3,5,8]", "--g_iters=1", *FROZEN, *_three_classes(tmp_path))
    assert "class embeddings taken from classes [3, 5, 8] of the checkpoint (10 classes in the checkpoint, 3" in capsys.readouterr().err
    new, old = _weights(run / "checkpoints" / "last.ckpt"), _weights(source)
    resized = [key for key in new if new[key].shape != old[key].shape]
    assert resized
    assert_close({key: new[key] for key in resized}, {key: old[key][[3, 5, 8]] for key in resized}, rtol=0, atol=0)


def test_a_class_map_that_does_not_fit_is_one_line_before_any_run_directory(trained_run, tmp_path, capsys):
    source = trained_run / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        fit(tmp_path, "--init_from", str(source), "--init_classes=[3,10]", *_three_classes(tmp_path))
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].endswith(
        "--init_classes needs 3 classes of the checkpoint (one per class of this data, each in [0, 9]), got [3, 10]"), lines
    assert not list((tmp_path / "runs").glob("*/*"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.generator.init_args.width=4"], r"cannot initialize from \S+: generator\.\S+ is \[\d+\] in the checkpoint "
         r"and \[\d+\] in this config \(the architecture differs; generator.width: 2 in the checkpoint, 4 now\)$"),
        (["--resume", "last"], "--init_from starts a new run from a checkpoint's weights, --resume continues a run: give one of them$"),
    ],
    ids=["another_shape", "with_resume"],
)
def test_what_cannot_start_from_the_checkpoint_is_one_line_before_any_run_directory(args, expected, trained_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit(tmp_path, "--init_from", str(trained_run / "checkpoints" / "last.ckpt"), *args)
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and re.search(expected, lines[0]), lines
    assert not list((tmp_path / "runs").glob("*/*"))


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY_DIGITS, "--init_from", str(junk), "--run_root", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and f"cannot load {junk} as a sagan checkpoint" in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_of_another_task_is_refused(trained_run, tmp_path):
    from sagan.tasks.repair import RepairGAN  # noqa: F401  (the class the config would train)

    with pytest.raises(UsageError, match="it is a checkpoint of sagan.tasks.image.ImageGAN, and this config trains sagan.tasks.repair.RepairGAN"):
        init_from(trained_run / "checkpoints" / "last.ckpt", torch.nn.Module(), "sagan.tasks.repair.RepairGAN")


def test_repair_networks_start_from_a_repair_checkpoint(tmp_path):
    source = fit_repair(tmp_path / "a", "--g_iters=1") / "checkpoints" / "last.ckpt"
    run = fit_repair(tmp_path / "b", "--init_from", str(source), "--g_iters=1", *FROZEN)
    assert_close(_weights(run / "checkpoints" / "last.ckpt"), _weights(source), rtol=0, atol=0)


CONDITIONAL = [
    pytest.param(cls, kwargs, id=f"{module.name}.{name}")
    for module in pkgutil.iter_modules(sagan.models.__path__)
    for name, (cls, kwargs) in getattr(importlib.import_module(f"sagan.models.{module.name}"), "TINY", {}).items()
    if "num_classes" in inspect.signature(cls).parameters and getattr(cls, "num_classes", None) != 0
    and kwargs.get("pack", 1) == 1  # a packed discriminator is unconditional
    and kwargs.get("norm", "batch") != "group"  # the sprite generator's group norm is unconditional
]


@pytest.mark.parametrize(("cls", "kwargs"), CONDITIONAL)
def test_every_tensor_that_depends_on_the_number_of_classes_is_a_class_embedding(cls, kwargs):
    """What another number of classes changes in a network is exactly what `--init_from` re-initializes."""
    three, five = torch.nn.Module(), torch.nn.Module()
    three.generator, five.generator = cls(**{**kwargs, "num_classes": 3}), cls(**{**kwargs, "num_classes": 5})
    old, new = three.generator.state_dict(), five.generator.state_dict()
    assert old.keys() == new.keys()
    differ = [key for key in new if old[key].shape != new[key].shape]
    assert differ
    assert all(_class_embedding(five, f"generator.{key}") is not None for key in differ)
