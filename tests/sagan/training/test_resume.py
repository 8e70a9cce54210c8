"""Exact resume: a run that stops and is resumed ends bit for bit where the uninterrupted run ends."""

import signal
from pathlib import Path

import pytest
import torch
from conftest import fit, fit_repair, fit_text, tiny
from probes import SHAPE, assert_same_training_state, records, recorded
from torch.testing import assert_close
from torch.utils.data import TensorDataset

from datamodules.resumable import training_loader
from sagan.models.inpaint import TINY as REPAIR_TINY
from sagan.models.text_transformer import TINY as TEXT_TINY
from sagan.tasks.image import ImageGAN
from sagan.tasks.repair import RepairGAN
from sagan.tasks.text import TextGAN

# n_critic=2 makes a generator iteration two batches, and epochs of 3 batches put every stop below
# mid-epoch, so the resumed part continues an epoch and then crosses into new ones.


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


# The text GAN: 3 MLE steps, then iterations of 2 D steps and 1 G step (3 optimizer steps in 2 batches);
# validation (which draws samples) every 4 batches. 6 generator updates = 12 optimizer steps, 9 batches.
TEXT_SHAPE = ["--model.pretrain_steps=3", "--model.n_critic=2", "--trainer.deterministic=true"]


@pytest.fixture(scope="module")
def straight_text(tmp_path_factory) -> tuple[Path, list[dict]]:
    """6 generator updates of the text GAN without a stop, with every batch's data and random draws."""
    tmp = tmp_path_factory.mktemp("straight_text")
    try:
        run = fit_text(tmp, "--g_iters=6", "--name=straight", *recorded(tmp), *TEXT_SHAPE)
    finally:
        torch.use_deterministic_algorithms(False)
    return run, records(tmp / "records.jsonl")


@pytest.mark.parametrize(
    ("first_budget", "first_steps"), [(2, 2), (4, 6)], ids=["stop-in-pretraining", "stop-after-the-boundary"]
)
def test_text_gan_resume_across_the_phase_boundary_continues_exactly(straight_text, tmp_path, first_budget, first_steps):
    run, expected = straight_text
    first = fit_text(tmp_path, f"--g_iters={first_budget}", "--name=r", *recorded(tmp_path), *TEXT_SHAPE)
    assert torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == first_steps
    second = fit_text(tmp_path, "--g_iters=6", "--name=r", "--resume=last", *recorded(tmp_path), *TEXT_SHAPE)
    assert second == first
    # the same token batches in the same order, and the same python / numpy / torch draws before every batch
    assert records(tmp_path / "records.jsonl") == expected
    straight_state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    resumed_state = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert straight_state["global_step"] == resumed_state["global_step"] == 3 + 3 * 3
    assert_close(resumed_state["state_dict"], straight_state["state_dict"], rtol=0, atol=0)
    optimizers = [[opt["state"] for opt in state["optimizer_states"]] for state in (straight_state, resumed_state)]
    assert len(optimizers[0]) == 3  # MLE, adversarial G, D
    assert_close(optimizers[1], optimizers[0], rtol=0, atol=0)


def test_repair_gan_resumed_continues_exactly(tmp_path):
    # 2 generator iterations, then extended to 3 with --resume last, against 3 without a stop: the same
    # batches (damage drawn per data epoch and index), the same networks, average and optimizer moments
    shape = ["--model.n_critic=2", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0",
             "--trainer.deterministic=true"]
    try:
        straight = fit_repair(tmp_path / "a", "--g_iters=3", *recorded(tmp_path / "a"), *shape)
        fit_repair(tmp_path / "b", "--g_iters=2", "--name=r", *recorded(tmp_path / "b"), *shape)
        resumed = fit_repair(
            tmp_path / "b", "--g_iters=3", "--name=r", "--resume=last", *recorded(tmp_path / "b"), *shape
        )
    finally:
        torch.use_deterministic_algorithms(False)
    assert records(tmp_path / "b" / "records.jsonl") == records(tmp_path / "a" / "records.jsonl")
    first = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    second = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == second["global_step"] == 9
    assert_close(second["state_dict"], first["state_dict"], rtol=0, atol=0)
    assert_close(
        [opt["state"] for opt in second["optimizer_states"]], [opt["state"] for opt in first["optimizer_states"]],
        rtol=0, atol=0,
    )


# Progressive growing 8 -> 16 -> 32 (the digits' networks with grow_from=8), 8 images a batch: batches 0-1 at
# 8x8, 2-4 at 16x16 (fade 0, 0.5, 1), 5-7 at 32x32; the first run stops after batch 3, mid-fade. Without
# validation: the first run of a process that prepares the digits metrics draws other training noise than
# the later ones (the metrics' first preparation moves the global random stream), whatever the task.
GROWING = ["--trainer.limit_val_batches=0",
    "--model.generator.init_args.grow_from=8", "--model.discriminator.init_args.grow_from=8",
    "--model.growing=sagan.tasks.growing.GrowthSchedule", "--model.growing.init_args.stage_images=[16,24]",
    "--model.growing.init_args.fade_images=16",
]


def test_progressive_growing_resumed_mid_fade_continues_exactly(tmp_path):
    try:
        straight = fit(tmp_path / "a", "--g_iters=4", *GROWING, *SHAPE)
        first = fit(tmp_path / "b", "--g_iters=2", "--name=r", *GROWING, *SHAPE)
        stopped = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
        resumed = fit(tmp_path / "b", "--g_iters=4", "--name=r", "--resume=last", *GROWING, *SHAPE)
    finally:
        torch.use_deterministic_algorithms(False)
    assert stopped["growth"] == {"images_seen": 32, "stage": 1}
    assert stopped["state_dict"]["generator.growth.fade"].item() == 0.5  # stopped mid-fade at 16x16
    assert_same_training_state(straight, resumed)
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["growth"]["stage"] == 2


def _image_gan() -> ImageGAN:
    return ImageGAN(tiny("generator-32"), tiny("discriminator-32"))


def _text_gan() -> TextGAN:
    (g_cls, g_kwargs), (d_cls, d_kwargs) = TEXT_TINY["text-generator"], TEXT_TINY["text-discriminator"]
    return TextGAN(g_cls(**g_kwargs), d_cls(**d_kwargs))


def _repair_gan() -> RepairGAN:
    (g_cls, g_kwargs), (d_cls, d_kwargs) = REPAIR_TINY["inpaint-generator"], REPAIR_TINY["patch-discriminator"]
    return RepairGAN(g_cls(**g_kwargs), d_cls(**d_kwargs))


@pytest.mark.parametrize("make", [_image_gan, _text_gan, _repair_gan], ids=["image", "text", "repair"])
def test_validation_draws_fixed_noise_and_leaves_the_training_stream(make):
    # what the modules' own hooks must keep when they extend the shared ones (they call super())
    model = make()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    draws = []
    for _ in range(2):
        model.on_validation_epoch_start()
        draws.append(torch.rand(4))
        model.on_validation_epoch_end()
    assert_close(draws[1], draws[0], rtol=0, atol=0)  # every validation draws the same noise
    assert_close(torch.rand(3), expected, rtol=0, atol=0)  # and training continues its own stream
    checkpoint = {}
    model.on_save_checkpoint(checkpoint)
    assert {"random_state", "nonfinite"} <= checkpoint.keys()
    assert_close(checkpoint["random_state"]["torch"], torch.get_rng_state(), rtol=0, atol=0)


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


def test_a_resume_with_another_checkpoint_interval_keeps_last_ckpt_the_newest(tmp_path):
    fit(tmp_path, "--g_iters=3", "--name=r", "--checkpoint.every_n_train_steps=4")  # 6 optimizer steps
    second = fit(tmp_path, "--g_iters=5", "--name=r", "--resume=last", "--checkpoint.every_n_train_steps=2")
    assert torch.load(second / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"] == 10
    run = fit(tmp_path, "--g_iters=6", "--name=r", "--resume=last")  # continues the second segment, not the first
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("last*")) == ["last.ckpt"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True, map_location="cpu")["global_step"] == 12


@pytest.mark.parametrize("which", ["image", "text"])
def test_last_checkpoint_holds_the_state_the_run_ended_with(which, tmp_path):
    """A budget that is no multiple of the checkpoint interval still ends with last.ckpt at the final step
    (Lightning's own end-of-training save is skipped once any last.ckpt was written)."""
    budget = ["--g_iters=5", "--checkpoint.every_n_train_steps=4"]
    if which == "image":
        run = fit(tmp_path, *budget, "--trainer.val_check_interval=3", "--trainer.check_val_every_n_epoch=null")
        expected = 10  # 5 generator iterations of 1 D + 1 G step
    else:
        run = fit_text(tmp_path, *budget, "--model.pretrain_steps=3", "--model.n_critic=1")
        expected = 3 + 2 * 2  # 3 MLE steps, then 2 adversarial iterations of 1 D + 1 G step
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == expected
