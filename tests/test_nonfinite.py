"""Non-finite losses: the step is skipped on the device and counted; a run of them stops training with a
checkpoint; and the training step never reads a tensor on the host."""

import contextlib
from unittest import mock

import lightning as L
import pytest
import torch
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from conftest import tiny
from probes import PoisonBatches
from sagan.errors import TrainingStopped
from sagan.losses import R1Penalty
from sagan.module import GAN


class _Data(L.LightningDataModule):
    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.rand(32, 1, 32, 32, generator=g) * 2 - 1, torch.randint(0, 3, (32,), generator=g))
        return DataLoader(data, batch_size=8, shuffle=False, drop_last=True)


def _gan(**kwargs) -> GAN:
    return GAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), **kwargs)


def _fit(model: GAN, tmp_path, max_steps: int, *callbacks: L.Callback) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, log_every_n_steps=1, default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )
    trainer.fit(model, datamodule=_Data())
    return trainer


def _adam_steps(optimizer: torch.optim.Optimizer) -> set[float]:
    return {state["step"].item() for state in optimizer.state.values()}


class _Watch(L.Callback):
    """D's parameters before and after every training batch."""

    def __init__(self):
        self.before, self.after = [], []

    def on_train_batch_start(self, trainer, pl_module, *args):
        self.before.append([p.detach().clone() for p in pl_module.discriminator.parameters()])

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.after.append([p.detach().clone() for p in pl_module.discriminator.parameters()])


def test_a_nan_image_skips_that_discriminator_step_and_is_counted(tmp_path):
    model, watch = _gan(), _Watch()
    trainer = _fit(model, tmp_path, 6, PoisonBatches([1]), watch)  # 3 batches, each a D and a G step
    assert_close(watch.after[1], watch.before[1], rtol=0, atol=0)  # D left exactly as it was
    assert all(not torch.equal(a, b) for a, b in zip(watch.after[2], watch.before[2]))  # then trains again
    opt_g, opt_d = trainer.optimizers
    assert _adam_steps(opt_d) == {2.0} and _adam_steps(opt_g) == {3.0}  # Adam's own count skipped it too
    assert trainer.logged_metrics["train/skipped_steps"].item() == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_consecutive_nonfinite_steps_stop_with_a_checkpoint(tmp_path):
    model = _gan(max_nonfinite=3)
    initial = {k: v.detach().clone() for k, v in model.discriminator.named_parameters()}
    with pytest.raises(TrainingStopped) as stop:
        _fit(model, tmp_path, 100, PoisonBatches([]))  # every batch holds a NaN
    assert stop.value.exit_code == 3
    message = str(stop.value)
    assert "\n" not in message and "3 consecutive discriminator steps" in message
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    assert str(checkpoint) in message
    state = torch.load(checkpoint, weights_only=False)  # built in Python: its hparams hold a HingeLoss object
    assert state["global_step"] == 6  # stopped after the third batch
    saved = {k: state["state_dict"][f"discriminator.{k}"] for k in initial}
    assert_close(saved, initial, rtol=0, atol=0)  # the last finite weights: D never took a step
    assert state["nonfinite"]["total"].item() == 3


@contextlib.contextmanager
def _no_host_reads():
    """Every way Python code reads a tensor's value on the host raises inside the block."""

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronization inside the training step")

    names = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(torch.Tensor, name, forbidden))
        yield


class _GuardTrainingStep(L.Callback):
    def on_train_start(self, trainer, pl_module):
        step = pl_module.training_step

        def guarded(*args, **kwargs):
            with _no_host_reads():
                return step(*args, **kwargs)

        pl_module.training_step = guarded


def test_training_step_never_reads_a_tensor_on_the_host(tmp_path):
    # every branch of the step: D step, G step, penalty, clipping, and a skipped (NaN) step
    model = _gan(n_critic=1, grad_clip=1.0, penalty=R1Penalty(gamma=0.1))
    trainer = _fit(model, tmp_path, 4, PoisonBatches([1]), _GuardTrainingStep())
    assert _adam_steps(trainer.optimizers[1]) == {1.0}  # the penalty's loss was skipped with the rest
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with _no_host_reads(), pytest.raises(AssertionError, match="host synchronization"):
        bool(torch.ones(()))  # the guard itself works
