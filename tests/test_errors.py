"""Checked values and one-line errors: every numeric constructor argument refuses what is out of range
(walked programmatically), the CLI says so in one line before any run directory exists, and operating-
system errors (a full disk, a dead DDP peer) end `sagan` in one line instead of a traceback."""

import errno
import importlib
import inspect
import functools
import math
import re
import threading
import types
import typing
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import EXPERIMENTS, TINY_DIGITS, TINY_ORACLE, tiny

import lightning as L

from datamodules.repair.degrade import Degradation
from datamodules.image.digits import DigitsDataModule
from datamodules.image.folder import ImageFolderDataModule
from datamodules.repair.masks import MaskGenerator
from datamodules.text.oracle import OracleDataModule
from datamodules.text.corpus import TextDataModule
from sagan.commands import main
from sagan.errors import UsageError, check_range
from sagan.evaluation.metrics import SampleMetrics, SampleQuality
from sagan.evaluation.repair_metrics import RepairEvaluation
from sagan.layers.augment import DiffAugment
from sagan.models import speech_transformer, video_transformer
from sagan.models.inpaint import TINY as REPAIR_TINY
from sagan.models.text_transformer import TINY as TEXT_TINY
from sagan.tasks.image import ImageGAN
from sagan.tasks.repair import RepairGAN
from sagan.tasks.speech import SpeechGAN
from sagan.tasks.text import TextGAN
from sagan.tasks.video import VideoGAN
from sagan.training.sample_grid import SampleGrid

REPO = Path(__file__).resolve().parent.parent


def _build(preset: tuple) -> torch.nn.Module:
    cls, kwargs = preset
    return cls(**kwargs)


# Valid values of the required arguments of the walked classes (a class found with a required argument missing
# here fails test_every_walked_class_can_be_built: add it, so that no class is left out of the walk).
REQUIRED = {
    ImageGAN: lambda: {"generator": tiny("generator-32-cond", num_classes=10),
                       "discriminator": tiny("discriminator-32-cond", num_classes=10)},
    TextGAN: lambda: {"generator": _build(TEXT_TINY["text-generator"]),
                      "discriminator": _build(TEXT_TINY["text-discriminator"])},
    RepairGAN: lambda: {"generator": _build(REPAIR_TINY["inpaint-generator"]),
                        "discriminator": _build(REPAIR_TINY["patch-discriminator"])},
    VideoGAN: lambda: {"generator": _build(video_transformer.TINY["video-generator-16"]),
                       "discriminator": _build(video_transformer.TINY["video-discriminator-16"])},
    SpeechGAN: lambda: {"generator": _build(speech_transformer.TINY["generator"]),
                        "discriminator": _build(speech_transformer.TINY["discriminator"])},
    "datamodules.repair.damaged.RepairDataModule": lambda: {"data": DigitsDataModule()},
    SampleQuality: lambda: {"features": None},
    MaskGenerator: lambda: {"kind": "strokes"},
    Degradation: lambda: {"preset": "old_photo"},
}
# What users configure besides the modules, data modules, callbacks and losses that the walk finds by itself
CONFIGURABLE = [DiffAugment, SampleMetrics, MaskGenerator, Degradation, RepairEvaluation]
WALKED_KINDS = (L.LightningModule, L.LightningDataModule, L.Callback)


def _package_modules() -> list[str]:
    names = []
    for package in ("sagan", "datamodules"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] != "__main__":
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _model_classes() -> dict[type, dict]:
    """Every network class of sagan/models with the kwargs of its first TINY preset."""
    found = {}
    for path in sorted((REPO / "sagan" / "models").glob("*.py")):
        for cls, kwargs in getattr(importlib.import_module(f"sagan.models.{path.stem}"), "TINY", {}).values():
            found.setdefault(cls, kwargs)
    return found


@functools.cache
def _found_classes() -> list[type]:
    """Every concrete public class of the packages that users configure: Lightning modules, data modules and
    callbacks, the losses and penalties, and `CONFIGURABLE`; found by importing every module."""
    found = []
    for name in _package_modules():
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if cls.__module__ != name or cls.__name__.startswith("_") or inspect.isabstract(cls):
                continue
            if issubclass(cls, WALKED_KINDS) or name == "sagan.losses" or cls in CONFIGURABLE:
                found.append(cls)
    return found


def _required(cls: type) -> dict:
    make = REQUIRED.get(cls) or REQUIRED.get(f"{cls.__module__}.{cls.__name__}")
    return make() if make else {}


@functools.cache
def _classes() -> dict[type, dict]:
    """The classes whose numeric arguments are walked, with valid keyword arguments for the rest."""
    return {cls: _required(cls) for cls in _found_classes()} | _model_classes()


def test_every_walked_class_can_be_built():
    """A class the walk finds must build with its valid arguments (or get past them to a missing data set, after
    its range checks), or its bad values prove nothing."""
    failed = []
    for cls, kwargs in _classes().items():
        try:
            cls(**kwargs)
        except UsageError as error:
            if "not found" not in str(error):
                failed.append(f"{cls.__module__}.{cls.__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - name every class that does not build
            failed.append(f"{cls.__module__}.{cls.__name__}: {type(error).__name__}: {error}")
    assert not failed, failed


def test_the_walk_finds_classes_by_itself():
    names = {cls.__name__ for cls in _classes()}
    assert {"VideoFolderDataModule", "AudioFolderDataModule", "RepairDataModule", "VideoGAN", "SpeechGAN",
            "SignalCheckpoint", "ImagePredictionWriter", "R1R2Penalty", "SampleQuality"} <= names


def _numeric(annotation) -> tuple[str, type] | None:
    """("scalar" | "tuple", int | float) for int/float arguments (optional or not), tuples of them; else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in (int, float):
        return "scalar", annotation
    if typing.get_origin(annotation) is tuple:
        items = {a for a in typing.get_args(annotation) if a is not Ellipsis}
        if items and items <= {int, float}:
            return "tuple", float if float in items else int
    return None


def _bad_values() -> list[tuple[type, dict, str, object]]:
    """(class, valid kwargs, argument, bad value) for every numeric argument: NaN, infinity and -1 for
    floats, -1 for ints (seeds take any integer), and a negative element for tuples."""
    cases = []
    for cls, kwargs in _classes().items():
        hints = typing.get_type_hints(cls.__init__)
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            kind = _numeric(hints.get(name))
            if kind is None or "seed" in name:
                continue
            shape, number = kind
            if shape == "scalar":
                values = [math.nan, math.inf, -1.0] if number is float else [-1]
            else:
                base = kwargs.get(name, parameter.default)
                base = list(base) if base not in (None, inspect.Parameter.empty) and len(base) else [1]
                values = [tuple([math.nan if number is float else -1, *base[1:]])]
            cases += [(cls, kwargs, name, value) for value in values]
    return cases


BAD_VALUES = _bad_values()

# upper ends and zero counts, which the walk above does not try
OUT_OF_RANGE = [
    (ImageGAN, "ema_decay", 1.0), (ImageGAN, "ema_decay", 2.0), (ImageGAN, "betas", (0.0, 1.0)),
    (ImageGAN, "n_critic", 0), (ImageGAN, "grid_size", 0), (ImageGAN, "max_nonfinite", 0),
    (TextGAN, "betas", (0.9, 1.5)), (TextGAN, "beta_max", 0.5), (TextGAN, "beta_steps", 0),
    (DiffAugment, "translation_ratio", 1.0), (DiffAugment, "cutout_ratio", 1.5), (SampleGrid, "every_n_g_steps", 0),
    (SampleQuality, "is_splits", 0), (SampleQuality, "num_samples", 1), (DigitsDataModule, "val_fraction", 1.0),
    (DigitsDataModule, "batch_size", 0), (ImageFolderDataModule, "val_fraction", 0.0),
    (TextDataModule, "valid_fraction", 1.0), (OracleDataModule, "num_train", 0),
    (TEXT_TINY["text-generator"][0], "dropout", 1.0),
]


def test_the_walk_covers_the_numeric_arguments():
    walked = {(cls.__name__, name) for cls, _, name, _ in BAD_VALUES}
    assert len(walked) >= 90, len(walked)
    for expected in [("ImageGAN", "ema_decay"), ("ImageGAN", "lr_d"), ("ImageGAN", "betas"), ("TextGAN", "lr_mle"),
                     ("GradientPenalty", "weight"), ("R1Penalty", "gamma"), ("SampleQuality", "kid_subset_size"),
                     ("SAGANDiscriminator", "pack"), ("TransGANGenerator", "mlp_ratio"), ("OracleDataModule", "seq_len")]:
        assert expected in walked, expected


def _accepted(cases) -> list[str]:
    """The (class, argument, value) cases whose constructor did not raise a ValueError naming the argument."""
    wrong = []
    for cls, kwargs, name, value in cases:
        try:
            cls(**{**kwargs, name: value})
            wrong.append(f"{cls.__name__}({name}={value!r}) was accepted")
        except ValueError as error:
            if not re.search(rf"\b{name}(\[\d+\])? must be|\b{name}\b", str(error)):
                wrong.append(f"{cls.__name__}({name}={value!r}): the error does not name it: {error}")
    return wrong


def test_every_numeric_argument_refuses_nan_infinity_and_negatives():
    assert not _accepted(BAD_VALUES)


def test_upper_ends_and_zero_counts_are_refused():
    classes = _classes()
    cases = [(cls, classes.get(cls, {}), name, value) for cls, name, value in OUT_OF_RANGE]
    assert not _accepted(cases)
    for cls, kwargs, name, value in cases:  # and they say which range
        with pytest.raises(ValueError, match=rf"{name}(\[\d+\])? must be a finite number (in |>)"):
            cls(**{**kwargs, name: value})


def test_check_range_message_names_owner_argument_range_and_value():
    with pytest.raises(ValueError) as error:
        check_range("ImageGAN", "ema_decay", 2.0, "[0, 1)")
    assert str(error.value) == "ImageGAN: ema_decay must be a finite number in [0, 1), got 2.0"
    with pytest.raises(ValueError, match=r"lr_g must be a finite number >= 0, got nan"):
        check_range("ImageGAN", "lr_g", math.nan, "[0, inf)")
    with pytest.raises(ValueError, match=r"betas\[1\] must be a finite number in \[0, 1\), got 1.0"):
        check_range("ImageGAN", "betas", (0.0, 1.0), "[0, 1)")
    check_range("ImageGAN", "grad_clip", None, "[0, inf)")  # an option that is off
    check_range("ImageGAN", "ema_decay", 0.0, "[0, 1)")  # the closed end is allowed


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("sagan: error")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([*TINY_DIGITS, "--model.init_args.ema_decay=2"], "ema_decay must be a finite number in [0, 1), got 2.0"),
        ([*TINY_DIGITS, "--model.init_args.lr_d=-1e-4"], "lr_d must be a finite number >= 0"),
        ([*TINY_DIGITS, "--model.init_args.penalty=sagan.losses.GradientPenalty",
          "--model.init_args.penalty.init_args.weight=.nan"], "weight must be a finite number >= 0, got nan"),
        ([*TINY_DIGITS, "--checkpoint.every_n_train_steps=-1"], "every_n_train_steps"),
        ([*TINY_ORACLE, "--model.init_args.beta_max=.inf"], "beta_max must be a finite number >= 1"),
    ],
    ids=["ema_decay", "negative_lr", "nan_penalty", "checkpoint_interval", "text_beta_max"],
)
def test_out_of_range_options_are_one_line_exit_2_and_no_run_directory(args, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--run_root", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------- OS errors
def _raising(error: BaseException):
    def run(*args, **kwargs):
        raise error

    return run


def test_a_full_disk_mid_run_is_one_line(monkeypatch, capsys):
    # torch.save turns the writer's ENOSPC into "unexpected pos"; the line names the real problem and the file
    wrapped = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    wrapped.__context__ = OSError(errno.ENOSPC, "No space left on device", "runs/x/samples/grid_000200.png")
    monkeypatch.setattr("sagan.cli.SaganCLI", _raising(wrapped))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit"])
    assert exit_info.value.code == 2
    assert _error_lines(capsys) == ["sagan: error: No space left on device: runs/x/samples/grid_000200.png"]


def test_a_dead_ddp_peer_is_one_line_on_the_survivor(monkeypatch, capsys):
    store = dist.HashStore()
    groups = {}
    makers = [threading.Thread(target=lambda r=r: groups.__setitem__(r, dist.ProcessGroupGloo(store, r, 2)))
              for r in (0, 1)]
    for thread in makers:
        thread.start()
    for thread in makers:
        thread.join(timeout=30)
    del groups[1]  # the peer goes away: gloo closes its connections

    def survivor(*args, **kwargs):
        groups[0].allreduce([torch.ones(3)]).wait()

    monkeypatch.setattr("sagan.cli.SaganCLI", survivor)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit"])
    assert exit_info.value.code == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "another process of this distributed run stopped" in lines[0], lines
    assert "Connection closed by peer" in lines[0] and "pair.cc" not in lines[0]


def test_yaml_syntax_error_names_the_file_and_the_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: sagan.tasks.image.ImageGAN\n   init_args: [\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS / "sagan_digits.yaml"), "--config", str(bad)])
    assert exit_info.value.code == 2
    (line,) = _error_lines(capsys)
    assert f"{bad}: invalid YAML at line 3, column 13: mapping values are not allowed here" in line


@pytest.mark.slow
def test_a_ddp_peer_killed_mid_run_leaves_one_line_on_the_survivor_within_seconds(tmp_path):
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable, "-m", "sagan", "fit", *TINY_DIGITS, "--g_iters=20", "--tracker=none",
        "--run_root", str(tmp_path / "runs"), "--trainer.devices=2", "--trainer.accelerator=cpu",
        "--trainer.callbacks+=probes.DieOnRank", f"--trainer.callbacks.out={tmp_path / 'died'}",
        "--trainer.callbacks.batch=2",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and time.time() - float((tmp_path / "died").read_text()) < 30  # within seconds
    lines = [line for line in done.stderr.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1 and "another process of this distributed run stopped" in lines[0], done.stderr[-3000:]
