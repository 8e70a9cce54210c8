"""`sagan export`: the EMA generator alone, equal to it, loadable where `sagan` cannot be imported."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.testing import assert_close

from sagan.commands import main
from sagan.evaluation.checkpoint import build_data_and_metrics
from sagan.commands.export import StandaloneGenerator, run_program, write_program
from sagan.evaluation.checkpoint import load_gan
from sagan.latent import noise
from sagan.models.transgan import TINY as TRANSGAN_TINY

# Loads an exported generator as a user without this package would, and runs it on saved inputs.
LOAD_WITHOUT_SAGAN = """
import importlib.abc, sys

class NoSagan(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("sagan", "datamodules"):
            raise ImportError(f"{name} must not be needed")

sys.meta_path.insert(0, NoSagan())
import torch

fmt, program, inputs, out = sys.argv[1:]
z, y = torch.load(inputs)
if fmt == "torchscript":
    images = torch.jit.load(program)(z, y)
elif fmt == "exported":
    images = torch.export.load(program).module()(z, y)
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(program, providers=["CPUExecutionProvider"])
    images = torch.from_numpy(session.run(None, {"z": z.numpy(), "y": y.numpy()})[0])
torch.save(images, out)
"""


@pytest.fixture
def checkpoint(trained_run, tmp_path) -> Path:
    """A copy of the tiny run's checkpoint (with its config), and a `sagan eval` result beside it."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run / "config.yaml", run / "config.yaml")
    shutil.copy(trained_run / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt")
    (run / "checkpoints" / "last_eval.json").write_text(json.dumps({"metrics": {"digits_fid": 12.5}}))
    return run / "checkpoints" / "last.ckpt"


def check_export(ckpt: Path, fmt: str, tmp_path: Path) -> dict:
    """Exports, then runs the program in a process that cannot import sagan on truncated noise and
    labels, and compares with the EMA generator; returns the card."""
    main(["export", "--ckpt", str(ckpt), "--format", fmt])
    program = ckpt.with_name("last_generator" + {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}[fmt])
    z = noise(5, 8, truncation=0.7, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 9, 9, 1])
    torch.save((z, y), tmp_path / "inputs.pt")
    subprocess.run(
        [sys.executable, "-I", "-c", LOAD_WITHOUT_SAGAN, fmt, str(program), str(tmp_path / "inputs.pt"),
         str(tmp_path / "images.pt")],
        check=True, cwd=tmp_path, timeout=120,
    )
    images = torch.load(tmp_path / "images.pt")
    with torch.no_grad():
        expected = load_gan(ckpt)(z, y)
    assert_close(images, expected, atol=1e-5, rtol=1e-5)  # ONNX Runtime's kernels round differently
    return json.loads(program.with_name(program.name + ".json").read_text())


def test_torchscript_export_equals_the_ema_generator_and_has_a_card(checkpoint, tmp_path):
    card = check_export(checkpoint, "torchscript", tmp_path)
    config = yaml.safe_load((checkpoint.parent.parent / "config.yaml").read_text())
    data, _ = build_data_and_metrics(config, {"features": None})
    assert card["architecture"] == "sagan.models.sagan.SAGANGenerator"
    assert card["z_dim"] == 8 and card["config"]["num_classes"] == 10 and card["output"]["range"] == [-1.0, 1.0]
    assert card["classes"] == {"count": 10, "names": [str(i) for i in range(10)]}
    assert card["data"]["fingerprint"] == data.fingerprint
    assert card["metrics"] == [{"file": "last_eval.json", "metrics": {"digits_fid": 12.5}}]
    assert card["check"]["max_abs_difference_to_ema_generator"] < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["exported", "onnx"])
def test_exported_and_onnx_programs_equal_the_ema_generator(checkpoint, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    card = check_export(checkpoint, fmt, tmp_path)
    assert card["format"] == fmt


def test_a_text_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt", str(tmp_path / "x.ckpt")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("sagan: error") == 1


def test_an_unconditional_generator_exports_with_noise_alone(tmp_path):
    cls, kwargs = TRANSGAN_TINY["generator-32"]
    generator = cls(**kwargs).eval()
    write_program(StandaloneGenerator(generator), (torch.randn(2, 8),), "torchscript", tmp_path / "g.pt")
    z = torch.randn(3, 8)  # another batch size than the example's
    with torch.no_grad():
        assert_close(run_program(tmp_path / "g.pt", "torchscript", (z,)), generator(z))
