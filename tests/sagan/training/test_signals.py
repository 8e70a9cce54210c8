"""Runs that end on a signal leave a loadable checkpoint; checkpoint files are written whole or not at all."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_DIGITS, fit

from sagan.cli import SaganCLI
from sagan.commands import main
from sagan.evaluation.checkpoint import load_gan
from sagan.errors import UsageError
from sagan.training.resume import AtomicCheckpointIO, requeue


def _sagan_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err[-2000:]
    return [line for line in err.splitlines() if line.startswith("sagan:")]


@pytest.mark.slow  # a real process sent a real signal; the fast check of the same handler is the next test
def test_sigterm_writes_a_loadable_checkpoint_and_exits(tmp_path):
    command = [
        sys.executable, "-m", "sagan", "fit", *TINY_DIGITS, "--g_iters=1000000", "--tracker=none",
        "--run_root", str(tmp_path), "--checkpoint.every_n_train_steps=1000000",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # the first sample grid is drawn once training has begun, after the handlers are in place
        while not list(tmp_path.glob("sagan_digits/*/samples/grid_000000.png")):
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    lines = _sagan_lines(err)
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0], lines
    (checkpoint,) = tmp_path.glob("sagan_digits/*/checkpoints/last.ckpt")
    assert str(checkpoint) in lines[0]
    assert torch.load(checkpoint, weights_only=True)["global_step"] >= 2  # at least one whole batch (D and G)
    load_gan(checkpoint)
    assert [p.name for p in checkpoint.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_sigterm_in_process_checkpoints_the_whole_batches_and_exits(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit(tmp_path, "--g_iters=50", "--trainer.callbacks+=probes.SendSignal",
            f"--trainer.callbacks.signum={int(signal.SIGTERM)}", "--trainer.callbacks.after_batches=2")
    assert exit_info.value.code == 128 + signal.SIGTERM
    lines = _sagan_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0] and "requeued" not in lines[0], lines
    (checkpoint,) = tmp_path.glob("runs/*/*/checkpoints/last.ckpt")
    assert str(checkpoint) in lines[0]
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 6  # three whole batches (D and G)
    load_gan(checkpoint)
    assert [p.name for p in checkpoint.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_sigusr1_under_slurm_checkpoints_requeues_and_resume_auto_continues(tmp_path, monkeypatch, capsys):
    calls = tmp_path / "scontrol.calls"
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    job = ["--name=job", "--resume=auto"]  # what a requeued job script runs every time
    with pytest.raises(SystemExit) as exit_info:
        fit(tmp_path, *job, "--g_iters=50", "--trainer.callbacks+=probes.SendSignal",
            f"--trainer.callbacks.signum={int(signal.SIGUSR1)}", "--trainer.callbacks.after_batches=2")
    assert exit_info.value.code == 128 + signal.SIGUSR1
    lines = _sagan_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "stopped by SIGUSR1" in lines[0] and "requeued SLURM job 4242" in lines[0]
    assert calls.read_text().split() == ["requeue", "4242"]
    (checkpoint,) = tmp_path.glob("runs/job/*/checkpoints/last.ckpt")
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 6  # three whole batches
    run = fit(tmp_path, *job, "--g_iters=4")
    assert run == checkpoint.parent.parent
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 8


def test_a_crash_mid_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    cli = SaganCLI(args=["fit", *TINY_DIGITS, "--g_iters=1", "--tracker=none", "--run_root", str(tmp_path)])
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)  # the CLI's default
    (last,) = tmp_path.rglob("last.ckpt")
    before, files = last.read_bytes(), sorted(last.parent.iterdir())

    def crashing_save(obj, f, *args, **kwargs):
        f.write(before[: len(before) // 2])  # half a checkpoint reaches the disk, then the process dies
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(UsageError, match=r"cannot write the checkpoint .*last.ckpt: No space left on device \(the previous one"):
        cli.trainer.save_checkpoint(last)  # one line for the user, not torch's "unexpected pos"
    monkeypatch.undo()
    assert last.read_bytes() == before and sorted(last.parent.iterdir()) == files
    load_gan(last)


def test_resume_refuses_a_checkpoint_that_needs_full_unpickling(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "callback": Path("pickled objects run code on load")}, bad)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY_DIGITS, "--run_root", str(tmp_path), "--tracker=none", "--resume", str(bad)])
    assert exit_info.value.code == 2
    lines = _sagan_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "weights_only" in lines[0] and str(bad) in lines[0], lines


def test_requeue_reports_a_missing_scontrol_instead_of_crashing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol here
    assert requeue("4242").startswith("could not requeue SLURM job 4242")
