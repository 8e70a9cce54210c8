"""The generator's average: its batch-norm statistics recomputed on its own activations (standing statistics)."""

import numpy as np
import pytest
import torch
from conftest import fit, tiny
from torch import nn
from torch.testing import assert_close

from sagan.evaluation.checkpoint import load_gan
from sagan.layers.norm import SpectralNorm
from sagan.tasks.image import ImageGAN
from sagan.training.ema import StandingStatistics, batch_norms, standing_statistics


def _batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and unbiased variance of [N, C] or [N, C, H, W] activations."""
    x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    return x.mean(0), x.var(0, ddof=1)


def test_standing_statistics_are_the_mean_of_each_batchs_statistics_in_training_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2), nn.BatchNorm1d(2)).eval()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2.0), net[1].bias.uniform_(-1, 1)
    batches = [torch.randn(n, 3) * 2 + 1 for n in (6, 5, 9)]
    standing_statistics(net, ((x,) for x in batches))

    w1, b1, w2, b2 = (p.detach().double().numpy() for p in (net[0].weight, net[0].bias, net[3].weight, net[3].bias))
    gamma, beta = net[1].weight.detach().double().numpy(), net[1].bias.detach().double().numpy()
    first, second = [], []
    for x in batches:  # independently, in NumPy: each batch normalized by its own (biased) statistics
        h = x.double().numpy() @ w1.T + b1
        first.append(_batch_stats(h))
        normed = (h - h.mean(0)) / np.sqrt(h.var(0) + net[1].eps) * gamma + beta
        second.append(_batch_stats(np.maximum(normed, 0) @ w2.T + b2))
    for norm, stats in ((net[1], first), (net[4], second)):
        assert_close(norm.running_mean.double(), torch.from_numpy(np.mean([m for m, _ in stats], 0)), rtol=1e-5, atol=1e-6)
        assert_close(norm.running_var.double(), torch.from_numpy(np.mean([v for _, v in stats], 0)), rtol=1e-5, atol=1e-6)
    assert all(not m.training and m.momentum == 0.1 for m in batch_norms(net))  # as they were


def test_standing_statistics_leave_everything_but_the_batch_norms_as_it_was():
    g = tiny("generator-32-cond").eval()
    spectral = {k: v.clone() for k, v in g.state_dict().items() if k.endswith((".u", ".v"))}
    weights = {k: v.clone() for k, v in g.named_parameters()}
    assert spectral and any(isinstance(m, SpectralNorm) for m in g.modules())
    before = batch_norms(g)[0].running_mean.clone()
    standing_statistics(g, [(torch.randn(8, g.z_dim), torch.randint(0, 3, (8,)))])
    assert not torch.equal(before, batch_norms(g)[0].running_mean)
    assert all(torch.equal(spectral[k], g.state_dict()[k]) for k in spectral)  # no power iteration ran
    assert all(torch.equal(weights[k], v) for k, v in g.named_parameters())
    assert not any(m.training for m in g.modules())


def test_checkpoints_hold_the_averages_own_statistics_and_training_is_unchanged(tmp_path):
    # the checkpoint of iteration 1, mid-run: no validation and no sample grid before it
    common = ("--g_iters=3", "--trainer.limit_val_batches=0", "--checkpoint.every_n_train_steps=2")
    copied = load_gan(next((fit(tmp_path / "a", *common) / "checkpoints").glob("*step=2.ckpt")))
    own = load_gan(next((fit(tmp_path / "b", *common, "--model.ema_bn_samples=100") / "checkpoints").glob("*step=2.ckpt")))
    norms = {f"generator_ema.{name}." for name, m in own.generator_ema.named_modules() if m in batch_norms(own.generator_ema)}
    a, b = copied.state_dict(), own.state_dict()
    statistics = [k for k in b if any(k.startswith(n) for n in norms)]
    assert statistics
    # the recomputation draws from its own seed: G, D and the average's weights are those of the run without it
    assert_close({k: v for k, v in b.items() if k not in statistics}, {k: v for k, v in a.items() if k not in statistics}, rtol=0, atol=0)
    assert not torch.equal(a[statistics[0]], b[statistics[0]])

    # the first batch norm's statistics, from its inputs on the documented noise (2 batches: 64 and 36 samples)
    ema = own.generator_ema
    first = batch_norms(ema)[0]
    seen = []
    handle = first.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].double().numpy()))
    generator = torch.Generator().manual_seed(StandingStatistics.STANDING_SEED)
    with torch.no_grad():
        for n in (64, 36):
            z = torch.randn(n, ema.z_dim, generator=generator)
            y = torch.randint(0, own.num_classes, (n,), generator=generator) if own.num_classes else None
            ema(z, y)
    handle.remove()
    stats = [_batch_stats(x) for x in seen]
    assert_close(first.running_mean.double(), torch.from_numpy(np.mean([m for m, _ in stats], 0)), rtol=1e-4, atol=1e-6)
    assert_close(first.running_var.double(), torch.from_numpy(np.mean([v for _, v in stats], 0)), rtol=1e-4, atol=1e-6)


def test_rejects_a_negative_number_of_standing_samples():
    with pytest.raises(ValueError, match="ema_bn_samples must be a finite number >= 0, got -1"):
        ImageGAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), ema_bn_samples=-1)
