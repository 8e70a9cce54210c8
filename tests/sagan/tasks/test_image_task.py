"""System tests of the GAN module: real optimizer steps on CPU with tiny networks."""

import lightning as L
import numpy as np
import pytest
import torch
from conftest import tiny
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from sagan.layers.norm import frozen_spectral_norm, spectral_norms
from sagan.losses import HingeLoss, R1Penalty
from sagan.tasks.image import ImageGAN
from sagan.training.ema import ema_update
from sagan.visualization.capture import attention_layers


class _TinyData(L.LightningDataModule):
    def __init__(self, num_classes: int = 3, n: int = 32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.data = TensorDataset(torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, torch.randint(0, num_classes, (n,), generator=g))

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=8, shuffle=True, drop_last=True)


def _gan(**kwargs) -> ImageGAN:
    g = tiny("generator-32-cond")
    d = tiny("discriminator-32-cond")
    return ImageGAN(g, d, **kwargs)


def _fit(model: ImageGAN, max_steps: int, callbacks: tuple = ()) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False, callbacks=list(callbacks),
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )
    trainer.fit(model, datamodule=_TinyData())
    return trainer


def _copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _changed(before: dict, net: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in net.named_parameters())


def test_discriminator_step_leaves_generator_untouched():
    model = _gan(n_critic=2)
    g, d, ema = _copy(model.generator), _copy(model.discriminator), _copy(model.generator_ema)
    g_u = {k: b.clone() for k, b in model.generator.named_buffers() if k.endswith(".u")}
    trainer = _fit(model, max_steps=1)  # one D step, no G step yet
    assert trainer.global_step == 1 and model.generator_steps == 0
    assert _changed(d, model.discriminator)
    assert not _changed(g, model.generator)
    assert not _changed(ema, model.generator_ema)
    # the fakes for D were drawn with G's power iteration paused
    assert g_u and all(torch.equal(g_u[k], b) for k, b in model.generator.named_buffers() if k in g_u)


def test_full_iteration_moves_both_networks_and_the_average():
    model = _gan(n_critic=2, ema_start=0, ema_decay=0.9)
    g, d, ema = _copy(model.generator), _copy(model.discriminator), _copy(model.generator_ema)
    trainer = _fit(model, max_steps=3)  # D, D, G
    assert trainer.global_step == 3 and model.generator_steps == 1
    assert _changed(g, model.generator) and _changed(d, model.discriminator) and _changed(ema, model.generator_ema)
    # one average step from the initial weights: ema = 0.9 * g0 + 0.1 * g1
    trained = dict(model.generator.named_parameters())
    for name, p in model.generator_ema.named_parameters():
        assert_close(p, 0.9 * g[name] + 0.1 * trained[name])
    keys = set(trainer.logged_metrics)
    assert {"train/d_loss", "train/d_real", "train/d_fake", "train/g_loss", "train/lr_g", "train/lr_d"} <= keys
    assert any(k.startswith("attn/g.") and k.endswith(".gamma") for k in keys)
    assert any(k.startswith("attn/d.") for k in keys)


def test_ema_before_start_copies_the_generator():
    model = _gan(ema_start=5)
    _fit(model, max_steps=2)
    for a, b in zip(model.generator_ema.parameters(), model.generator.parameters()):
        assert_close(a, b, rtol=0, atol=0)


class _GeneratorAfterEachIteration(L.Callback):
    """G's and its average's parameters (float64 NumPy) after every generator iteration, by iteration."""

    def __init__(self):
        self.generator, self.average = {}, {}

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        if model.generator_steps not in self.generator:
            self.generator[model.generator_steps] = [p.detach().double().numpy().copy() for p in model.generator.parameters()]
            self.average[model.generator_steps] = [p.detach().double().numpy().copy() for p in model.generator_ema.parameters()]


def test_uniform_average_is_the_mean_of_the_average_at_its_start_and_every_generator_after():
    model = _gan(ema_start=1, ema_decay=0.9, ema_uniform_start=3)
    seen = _GeneratorAfterEachIteration()
    _fit(model, max_steps=12, callbacks=[seen])  # 6 generator iterations (n_critic 1)
    g, average = seen.generator, seen.average
    assert sorted(g) == [1, 2, 3, 4, 5, 6]  # each batch: a D step, then a G step
    # 1: a copy; 2, 3: exponential; 4, 5, 6: uniform over the average of 3 and G of 4, 5, 6 (independent NumPy)
    at_3 = [0.9 * (0.9 * a + 0.1 * b) + 0.1 * c for a, b, c in zip(g[1], g[2], g[3])]
    for iteration in (4, 5, 6):
        members = [at_3] + [g[i] for i in range(4, iteration + 1)]
        expected = [np.asarray(np.mean(np.stack(group), axis=0)) for group in zip(*members)]
        assert_close([torch.from_numpy(p) for p in average[iteration]], [torch.from_numpy(p) for p in expected], rtol=1e-5, atol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(average[1], g[1]))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(ema_start=5, ema_uniform_start=4), "ema_uniform_start must be a finite number >= 5, got 4"),
        (dict(ema_uniform_start=-1), "ema_uniform_start must be a finite number >= 0, got -1"),
        (dict(ema_decay=None, ema_uniform_start=10), "ema_uniform_start needs a moving average"),
    ],
)
def test_rejects_a_uniform_average_before_the_exponential_one_or_without_one(options, message):
    with pytest.raises(ValueError, match=message):
        _gan(**options)


def test_losses_run_without_a_trainer():
    model = _gan(loss=HingeLoss())
    real, y = torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 0])
    z, y_fake = model.sample_noise(4)
    fake = model.generator(z, y_fake)
    loss, stats = model.discriminator_loss(real, y, fake, y_fake)  # refines D's sigma estimates once
    with frozen_spectral_norm(model.discriminator):  # the reference uses the same estimates
        d_real = model.discriminator(real, y)
        d_fake = model.discriminator(fake, y_fake)
    assert_close(loss, HingeLoss().discriminator(d_real, d_fake))
    assert_close(stats["train/d_real"], d_real.mean())
    assert_close(model.generator_loss(fake, y_fake), -d_fake.mean())


@pytest.mark.parametrize("approximation", ["exact", "finite_difference"])
def test_penalty_is_added_and_reported(approximation):
    model = _gan(penalty=R1Penalty(gamma=1.0, approximation=approximation))
    real, y = torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 0])
    z, y_fake = model.sample_noise(4)
    loss, stats = model.discriminator_loss(real, y, model.generator(z, y_fake), y_fake)
    assert stats["train/d_penalty"] > 0
    loss.backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())


def test_gradient_penalty_training_step_runs():
    from sagan.losses import GradientPenalty, WassersteinLoss

    model = _gan(loss=WassersteinLoss(), penalty=GradientPenalty(), n_critic=1)
    trainer = _fit(model, max_steps=2)
    assert torch.isfinite(trainer.logged_metrics["train/d_penalty"])


def test_finite_difference_penalty_training_step_runs_with_augmentation():
    """R3GAN's recipe with R1 + R2 by finite difference, DiffAugment in front of D: a real D + G step."""
    from sagan.layers.augment import DiffAugment
    from sagan.losses import R1R2Penalty, RelativisticLoss

    penalty = R1R2Penalty(gamma=1.0, approximation="finite_difference")
    model = _gan(loss=RelativisticLoss(), penalty=penalty, augment=DiffAugment(policy=["translation", "cutout"]))
    d_before = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer = _fit(model, max_steps=2)
    # the same augmentation at x and x + sigma e: about 0.2 here; with independent draws, about 3,600
    assert 0 < trainer.logged_metrics["train/d_penalty"] < 100
    assert any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))


def test_ema_update_exact():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.75 * a.weight.detach() + 0.25 * b.weight.detach()
    ema_update(a, b, decay=0.75)
    assert_close(a.weight, expected)


def test_rejects_bad_n_critic():
    with pytest.raises(ValueError, match="n_critic"):
        _gan(n_critic=0)


class _GradNorms(L.Callback):
    """Records each network's total gradient norm just before its optimizer steps."""

    def __init__(self):
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_grad_clip_bounds_both_networks_under_manual_optimization(clip):
    model = _gan(grad_clip=clip, n_critic=1)
    recorder = _GradNorms()
    trainer = L.Trainer(
        max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[recorder],
    )
    trainer.fit(model, datamodule=_TinyData())
    assert len(recorder.norms) == 4  # D, G, D, G
    if clip is None:
        assert min(recorder.norms) > 1e-2  # what clipping has to bring down
    else:
        assert max(recorder.norms) <= clip * (1 + 1e-4)


def test_packing_discriminator_scores_groups_of_real_and_of_generated_images():
    """PacGAN: D judges pairs, so the loss sees n/2 real and n/2 generated scores, never a mixed pair."""
    g = tiny("generator-32", channels=1)
    d = tiny("discriminator-32-pack", channels=1)
    model = ImageGAN(g, d)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    fake = model.generator(*model.sample_noise(4))
    loss, stats = model.discriminator_loss(real, None, fake, None)
    with frozen_spectral_norm(model.discriminator):
        d_real, d_fake = model.discriminator(real), model.discriminator(fake)
    assert d_real.shape == (2,)
    assert_close(loss, HingeLoss().discriminator(d_real, d_fake))
    assert_close(stats["train/d_fake"], d_fake.mean())
    _fit_unconditional = L.Trainer(
        max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )
    before = _copy(model.discriminator)
    _fit_unconditional.fit(model, datamodule=_TinyData())  # batches of 8: four pairs
    assert _changed(before, model.discriminator) and model.generator_steps == 2


def test_mode_seeking_term_pairs_samples_of_one_class():
    model = _gan(mode_seeking=2.0)
    z, y = model.sample_noise(8, paired=True)
    assert torch.equal(y[:4], y[4:])
    fake = torch.zeros(8, 1, 2, 2)
    fake[4:] = 0.5  # mean |G(z1) - G(z2)| = 0.5
    z = torch.zeros(8, 3)
    z[4:] = 2.0  # mean |z1 - z2| = 2
    assert_close(model.mode_seeking_loss(fake, z), torch.tensor(2.0 / (0.25 + 1e-5)))
    with pytest.raises(ValueError, match="mode_seeking"):
        _gan(mode_seeking=-1.0)
    trainer = _fit(model, max_steps=2)  # one D step and one G step with the term
    assert trainer.global_step == 2 and model.generator_steps == 1


def test_attention_panels_of_both_networks_leave_the_spectral_norms_alone():
    model = _gan().train()
    estimates = [norm.u.clone() for norm in spectral_norms(model.discriminator)]
    panels = model.attention_panels()  # no data module: D reads the generated image
    expected = {f"generator.{name}" for name in attention_layers(model.generator_ema)}
    expected |= {f"discriminator.{name}" for name in attention_layers(model.discriminator)}
    assert set(panels) == expected and len(expected) == 3
    for norm, u in zip(spectral_norms(model.discriminator), estimates):
        assert_close(norm.u, u)  # no power iteration outside D's own steps


class _CountingPenalty(R1Penalty):
    """A penalty of 5 that counts how often it is computed."""

    def __init__(self):
        super().__init__(gamma=1.0)
        self.calls = 0

    def __call__(self, critic, real, fake, y=None, y_fake=None):
        self.calls += 1
        return torch.ones((), requires_grad=True) * 5.0  # a constant: its weight shows in the logged loss


@pytest.mark.parametrize("n_critic, every, d_steps, calls", [(1, 1, 4, 4), (1, 3, 4, 2), (2, 2, 4, 2), (1, 4, 5, 2)])
def test_lazy_penalty_runs_every_kth_discriminator_step_with_k_times_its_weight(n_critic, every, d_steps, calls):
    penalty = _CountingPenalty()
    model = _gan(penalty=penalty, penalty_every=every, n_critic=n_critic)
    # discriminator steps 0, every, 2 * every, ... add it
    steps = d_steps + (d_steps // n_critic)  # optimizer steps (D + G) of `d_steps` batches
    trainer = _fit(model, max_steps=steps)
    assert penalty.calls == calls and trainer.global_step == steps


def test_lazy_penalty_weight_is_every_times_the_penalty():
    penalty = _CountingPenalty()
    model = _gan(penalty=penalty, penalty_every=3)
    real, y = torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 0])
    z, y_fake = model.sample_noise(4)
    fake = model.generator(z, y_fake).detach()
    loss, _ = model.discriminator_loss(real, y, fake, y_fake)  # the plain loss + 5
    weighted, stats = model._add_penalty(loss - 5.0, {}, real, fake, y, y_fake, weight=model.penalty_every)
    assert_close(weighted - (loss - 5.0), torch.tensor(15.0))
    assert_close(stats["train/d_penalty"], torch.tensor(5.0))
    assert not _gan(penalty=None, penalty_every=3).penalty_turn(0)  # no penalty: never its turn
    with pytest.raises(ValueError, match="penalty_every"):
        _gan(penalty=penalty, penalty_every=0)
