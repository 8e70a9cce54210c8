"""Exact resume: a run that stops and is resumed ends bit for bit where the uninterrupted run ends."""

import signal
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close
from torch.utils.data import TensorDataset

from conftest import fit
from datamodules.resumable import training_loader
from probes import records

# n_critic=2 makes a generator iteration two batches, and epochs of 3 batches put every stop below
# mid-epoch, so the resumed part continues an epoch and then crosses into new ones.
SHAPE = ["--model.n_critic=2", "--trainer.limit_train_batches=3", "--trainer.deterministic=true"]


def recorded(tmp: Path) -> list[str]:
    return ["--trainer.callbacks+=probes.Recorder", f"--trainer.callbacks.out={tmp / 'records.jsonl'}"]


@pytest.fixture(autouse=True)
def _nondeterministic_afterwards():
    yield
    torch.use_deterministic_algorithms(False)  # Trainer(deterministic=True) leaves it switched on


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, list[dict]]:
    """4 generator iterations (8 batches) without a stop, with every batch's data and random draws."""
    tmp = tmp_path_factory.mktemp("straight")
    try:
        run = fit(tmp, "--g_iters=4", "--name=straight", *recorded(tmp), *SHAPE)
    finally:
        torch.use_deterministic_algorithms(False)
    return run, records(tmp / "records.jsonl")


def assert_same_training_state(a: Path, b: Path) -> None:
    first = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)
    second = torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == second["global_step"] == 12
    assert_close(second["state_dict"], first["state_dict"], rtol=0, atol=0)  # G, D, EMA, spectral-norm vectors
    assert_close(
        [opt["state"] for opt in second["optimizer_states"]], [opt["state"] for opt in first["optimizer_states"]],
        rtol=0, atol=0,
    )


def test_extending_a_finished_budget_continues_exactly(straight, tmp_path):
    run, expected = straight
    first = fit(tmp_path, "--g_iters=2", "--name=r", *recorded(tmp_path), *SHAPE)  # stops in epoch 1, batch 1
    second = fit(tmp_path, "--g_iters=4", "--name=r", "--resume=last", *recorded(tmp_path), *SHAPE)
    assert second == first
    # the same batches in the same order, and the same python / numpy / torch draws before every batch
    assert records(tmp_path / "records.jsonl") == expected
    assert_same_training_state(run, second)


def test_signal_mid_iteration_then_resume_continues_exactly(straight, tmp_path, capsys):
    run, expected = straight
    with pytest.raises(SystemExit) as exit_info:
        fit(
            tmp_path, "--g_iters=4", "--name=r", *recorded(tmp_path), *SHAPE,
            "--trainer.callbacks+=probes.SendSignal", f"--trainer.callbacks.signum={int(signal.SIGINT)}",
            "--trainer.callbacks.after_batches=4",
        )
    assert exit_info.value.code == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sagan: stopped by SIGINT at generator iteration 2" in err
    (checkpoint,) = tmp_path.glob("runs/r/*/checkpoints/last.ckpt")
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 7  # one D step into iteration 3
    resumed = fit(tmp_path, "--g_iters=4", "--name=r", "--resume=last", *recorded(tmp_path), *SHAPE)
    assert records(tmp_path / "records.jsonl") == expected
    assert_same_training_state(run, resumed)


def _epochs(loader, batches: int) -> list[torch.Tensor]:
    out = []
    while len(out) < batches:
        out.extend(x for (x,) in loader)
    return out[:batches]


def test_loader_position_restores_the_stream_of_seeded_epochs():
    data = TensorDataset(torch.arange(10))
    whole = _epochs(training_loader(data, batch_size=2, seed=7), 12)  # 5 batches an epoch
    assert torch.equal(torch.cat(whole[:5]).sort().values, torch.arange(10))  # an epoch is a permutation
    assert not torch.equal(torch.cat(whole[:5]), torch.cat(whole[5:10]))  # and the next one another
    first = training_loader(data, batch_size=2, seed=7)
    it = iter(first)
    seen = [next(it)[0] for _ in range(3)]
    second = training_loader(data, batch_size=2, seed=7)
    second.load_state_dict(first.state_dict())
    assert first.state_dict() == {"position": 3}
    rest = _epochs(second, 9)
    assert_close(torch.stack(seen + rest), torch.stack(whole), rtol=0, atol=0)


def test_ranks_read_disjoint_shards_of_one_order():
    data = TensorDataset(torch.arange(12))
    shards = [torch.cat([x for (x,) in training_loader(data, 2, num_replicas=2, rank=r, seed=3)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(12))
