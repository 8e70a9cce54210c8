"""Non-finite losses: the step is skipped on the device and counted; a run of them stops training with a
checkpoint; and the training step never reads a tensor on the host. For the image GAN and the text GAN."""

import lightning as L
import pytest
import torch
from conftest import fit_text, tiny
from probes import GuardTrainingStep, PoisonBatches, PoisonOutputs, no_host_reads
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from datamodules.text.oracle import OracleDataModule
from sagan.errors import TrainingStopped
from sagan.losses import R1Penalty
from sagan.models.text_transformer import TINY as TEXT_TINY
from sagan.tasks.image import ImageGAN
from sagan.tasks.text import TextGAN


class _Data(L.LightningDataModule):
    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.rand(32, 1, 32, 32, generator=g) * 2 - 1, torch.randint(0, 3, (32,), generator=g))
        return DataLoader(data, batch_size=8, shuffle=False, drop_last=True)


def _gan(**kwargs) -> ImageGAN:
    return ImageGAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), **kwargs)


def _fit(model: ImageGAN, tmp_path, max_steps: int, *callbacks: L.Callback) -> L.Trainer:
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


def test_training_step_never_reads_a_tensor_on_the_host(tmp_path):
    # every branch of the step: D step, G step, penalty, clipping, and a skipped (NaN) step
    model = _gan(n_critic=1, grad_clip=1.0, penalty=R1Penalty(gamma=0.1))
    trainer = _fit(model, tmp_path, 4, PoisonBatches([1]), GuardTrainingStep())
    assert _adam_steps(trainer.optimizers[1]) == {1.0}  # the penalty's loss was skipped with the rest
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with no_host_reads(), pytest.raises(AssertionError, match="host synchronization"):
        bool(torch.ones(()))  # the guard itself works


# ------------------------------------------------------------------------------------------- text GAN
def _text_gan(**kwargs) -> TextGAN:
    (g_cls, g_kwargs), (d_cls, d_kwargs) = TEXT_TINY["text-generator"], TEXT_TINY["text-discriminator"]
    return TextGAN(g_cls(**g_kwargs), d_cls(**d_kwargs), vocabulary=_text_data().vocabulary, **kwargs)


def _text_data() -> OracleDataModule:
    return OracleDataModule(num_train=32, num_valid=8, num_test=8, seq_len=6, vocab_size=11, batch_size=8)


def _fit_text(model: TextGAN, tmp_path, max_steps: int, *callbacks: L.Callback) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, log_every_n_steps=1, default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )
    trainer.fit(model, datamodule=_text_data())
    return trainer


class _WatchNetwork(_Watch):
    def __init__(self, network: str):
        super().__init__()
        self.network = network

    def on_train_batch_start(self, trainer, pl_module, *args):
        self.before.append([p.detach().clone() for p in getattr(pl_module, self.network).parameters()])

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.after.append([p.detach().clone() for p in getattr(pl_module, self.network).parameters()])


def test_text_gan_skips_a_nan_mle_step_and_counts_it(tmp_path):
    model, watch = _text_gan(pretrain_steps=3), _WatchNetwork("generator")
    trainer = _fit_text(model, tmp_path, 3, PoisonOutputs("generator", [1]), watch)  # 3 MLE batches
    assert_close(watch.after[1], watch.before[1], rtol=0, atol=0)  # G left exactly as it was
    assert all(not torch.equal(a, b) for a, b in zip(watch.after[2], watch.before[2]))  # then trains again
    opt_mle, opt_g, opt_d = trainer.optimizers
    assert _adam_steps(opt_mle) == {2.0}
    assert trainer.logged_metrics["train/skipped_steps"].item() == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_text_gan_skips_a_nan_discriminator_step_and_counts_it(tmp_path):
    # no pre-training; n_critic=2: batch 0 is a D step alone, batch 1 a D step and a G step
    model, watch = _text_gan(pretrain_steps=0, n_critic=2), _WatchNetwork("discriminator")
    trainer = _fit_text(model, tmp_path, 3, PoisonOutputs("discriminator", [0]), watch)
    assert_close(watch.after[0], watch.before[0], rtol=0, atol=0)
    # then trains again (RSGAN's loss does not see a shift of D's logit: the last biases get no gradient)
    assert any(not torch.equal(a, b) for a, b in zip(watch.after[1], watch.before[1]))
    opt_mle, opt_g, opt_d = trainer.optimizers
    assert _adam_steps(opt_d) == {1.0} and _adam_steps(opt_g) == {1.0}
    assert trainer.logged_metrics["train/skipped_steps"].item() == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_text_gan_stops_after_consecutive_nonfinite_steps_with_a_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit_text(
            tmp_path, "--g_iters=20", "--model.pretrain_steps=10", "--model.max_nonfinite=3",
            "--trainer.log_every_n_steps=1", "--trainer.callbacks+=probes.PoisonOutputs",
            "--trainer.callbacks.network=generator",  # every MLE step is NaN
        )
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan:")]
    assert "Traceback" not in err and len(lines) == 1
    assert "sagan: error: 3 consecutive generator steps with a non-finite loss" in lines[0]
    (checkpoint,) = tmp_path.glob("runs/textgan_oracle/*/checkpoints/last.ckpt")
    assert str(checkpoint) in lines[0]
    state = torch.load(checkpoint, weights_only=True)
    assert state["global_step"] == 3 and state["nonfinite"]["total"].item() == 3
    mle_state = state["optimizer_states"][0]["state"]
    assert {s["step"].item() for s in mle_state.values()} == {0.0}  # no MLE step was taken
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_text_gan_training_step_never_reads_a_tensor_on_the_host(tmp_path):
    # both phases: MLE steps, D steps and G steps, with clipping, and a skipped (NaN) D step
    model = _text_gan(pretrain_steps=2, n_critic=1, grad_clip=1.0)
    trainer = _fit_text(model, tmp_path, 6, PoisonOutputs("discriminator", [2]), GuardTrainingStep())
    assert trainer.global_step == 6 and model.generator_steps == 4
    assert trainer.logged_metrics["train/skipped_steps"].item() == 2  # D's output also poisons that G step
    assert all(torch.isfinite(p).all() for p in model.parameters())
