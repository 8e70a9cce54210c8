"""System tests of the repair GAN: compositing, pure losses, real optimizer steps on CPU with tiny networks."""

import json
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import TINY_INPAINT, fit_repair
from torch.testing import assert_close
from torch.utils.data import DataLoader, Dataset

from sagan.commands import main
from sagan.evaluation.repair_metrics import composite
from sagan.layers.norm import frozen_spectral_norm
from sagan.losses import HingeLoss
from sagan.models.inpaint import TINY
from sagan.tasks.repair import RepairGAN
from sagan.training.checkpoints import load_module
from sagan.training.tracking import CSVTracker


def _net(name: str, **overrides) -> torch.nn.Module:
    cls, kwargs = TINY[name]
    return cls(**{**kwargs, **overrides})


def _gan(task: str = "inpaint", **kwargs) -> RepairGAN:
    if task == "inpaint":
        return RepairGAN(_net("inpaint-generator"), _net("patch-discriminator"), task, **kwargs)
    return RepairGAN(_net("restore-generator"), _net("patch-discriminator-blind", channels=3), task, **kwargs)


class _Items(Dataset):
    """(damaged, mask, clean, label) items as datamodules/repair/damaged.py gives them: fixed by index."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.clean = torch.rand(n, 3, 16, 16, generator=g) * 2 - 1
        self.mask = torch.zeros(n, 1, 16, 16)
        for i in range(n):
            top, left = torch.randint(0, 9, (2,), generator=g).tolist()
            self.mask[i, :, top : top + 7, left : left + 7] = 1

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        return self.clean[i] * (1 - self.mask[i]), self.mask[i], self.clean[i], 0


class _RepairData(L.LightningDataModule):
    """A stand-in for the repair data module: the batches it yields, nothing else."""

    task = "inpaint"

    def __init__(self):
        super().__init__()
        self.train, self.val = _Items(32, 0), _Items(8, 1)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=8, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=4)


def _fit(model: RepairGAN, max_steps: int, **kwargs) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=max_steps, accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **{"limit_val_batches": 0, "logger": False, **kwargs},
    )
    trainer.fit(model, datamodule=_RepairData())
    return trainer


def _copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _changed(before: dict, net: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in net.named_parameters())


def test_compositing_keeps_known_pixels_bit_exact():
    damaged, mask, clean, _ = _Items(4, 2)[:]
    output = torch.full_like(clean, float("nan"))  # whatever the generator makes, even NaN
    output[:, :, :8] = 0.123
    out = composite(damaged, output, mask)
    known = (mask == 0).expand_as(out)
    assert torch.equal(out[known], damaged[known])
    assert_close(out[~known], output[~known], rtol=0, atol=0, equal_nan=True)
    model = _gan().eval()
    repaired = model.repair(damaged, mask)
    assert torch.equal(repaired[known], damaged[known])
    assert not torch.equal(repaired[~known], damaged[~known])  # the holes are filled
    with pytest.raises(ValueError, match="needs the hole mask"):
        model.repair(damaged)


def test_losses_run_without_a_trainer():
    torch.manual_seed(0)
    model = _gan(hole_weight=3.0, adversarial_weight=0.5, feature_matching_weight=2.0)
    damaged, mask, clean, _ = _Items(4, 2)[:]
    output = model.generator(damaged, mask)
    fake = composite(damaged, output, mask)
    loss, stats = model.discriminator_loss(clean, fake, mask)  # refines D's sigma estimates once
    with frozen_spectral_norm(model.discriminator):  # the reference uses the same estimates
        d_real, real_features = model.discriminator.features(clean, mask)
        d_fake, fake_features = model.discriminator.features(fake, mask)
    assert d_real.shape == (4, 4, 4)  # one logit per 4x4 patch
    assert_close(loss, HingeLoss().discriminator(d_real, d_fake))
    assert_close(stats["train/d_fake"], d_fake.mean())
    g_loss, g_stats = model.generator_loss(output, damaged, mask, clean)
    weight = 1 + 2 * mask.expand_as(clean)  # holes weigh 3, known pixels 1
    l1 = ((output - clean).abs() * weight).sum() / weight.sum()
    matching = sum((f - r).abs().mean() for f, r in zip(fake_features, real_features)) / len(fake_features)
    assert_close(g_stats["train/g_l1"], l1)
    assert_close(g_stats["train/g_feature_matching"], matching)
    assert_close(g_stats["train/g_adversarial"], -d_fake.mean())
    assert_close(g_loss, 0.5 * -d_fake.mean() + l1 + 2.0 * matching)


def test_discriminator_step_leaves_generator_untouched():
    model = _gan(n_critic=2)
    g, d, ema = _copy(model.generator), _copy(model.discriminator), _copy(model.generator_ema)
    trainer = _fit(model, max_steps=1)  # one D step, no G step yet
    assert trainer.global_step == 1 and model.generator_steps == 0
    assert _changed(d, model.discriminator)
    assert not _changed(g, model.generator) and not _changed(ema, model.generator_ema)


def test_full_iteration_moves_both_networks_and_the_average_and_logs(tmp_path):
    model = _gan(ema_decay=0.9)
    g, d, ema = _copy(model.generator), _copy(model.discriminator), _copy(model.generator_ema)
    trainer = _fit(model, max_steps=4, limit_val_batches=1, val_check_interval=2,  # 2 batches of D + G steps
                   logger=CSVTracker(str(tmp_path)))
    assert trainer.global_step == 4 and model.generator_steps == 2
    assert _changed(g, model.generator) and _changed(d, model.discriminator) and _changed(ema, model.generator_ema)
    keys = set(trainer.logged_metrics)
    assert {"train/d_loss", "train/d_real", "train/d_fake", "train/g_loss", "train/g_l1", "train/g_adversarial",
            "train/g_feature_matching", "train/skipped_steps"} <= keys
    assert any(key.startswith("val/") for key in keys)
    recipe = json.loads((tmp_path / "val_recipe.json").read_text())  # beside metrics.csv
    assert recipe["split"] == "val" and recipe["ema"] is True and recipe["features"] == "none"
    assert recipe["generated_samples"] == recipe["real_samples"] == model.evaluation.scored > 0


def test_ema_before_start_copies_the_generator():
    model = _gan(ema_start=5)
    _fit(model, max_steps=2)
    for a, b in zip(model.generator_ema.parameters(), model.generator.parameters()):
        assert_close(a, b, rtol=0, atol=0)


def test_blind_restoration_never_gives_the_networks_the_mask():
    model = _gan("restore").eval()
    damaged, mask, clean, _ = _Items(2, 3)[:]
    assert_close(model.repair(damaged, mask), model.repair(damaged), rtol=0, atol=0)
    assert not torch.equal(model.repair(damaged), damaged)  # the whole image is the network's: no compositing
    loss, _ = model.generator_loss(model.generator(damaged), damaged, mask, clean)
    assert torch.isfinite(loss)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: RepairGAN(_net("restore-generator"), _net("patch-discriminator"), "inpaint"), "generator's use_mask"),
        (lambda: RepairGAN(_net("restore-generator"), _net("patch-discriminator"), "restore"),
         "discriminator's use_mask"),
        (lambda: _gan(task="denoise"), "task must be"),
        (lambda: _gan(hole_weight=0.0), "hole_weight must be a finite number > 0"),
        (lambda: _gan(l1_weight=-1.0), "l1_weight"),
    ],
)
def test_rejects_bad_configurations(make, expected):
    with pytest.raises(ValueError, match=expected):
        make()


def test_fixed_samples_show_damaged_repaired_original_and_the_attention():
    model = _gan(grid_size=3)
    data = _RepairData()
    model._trainer = SimpleNamespace(datamodule=data)  # all that the pictures ask of the trainer
    pictures = model.fixed_samples()
    damaged, mask, clean, _ = data.val[:3]
    grid = pictures["grid"].view(3, 3, 3, 16, 16)
    assert torch.equal(grid[:, 0], damaged) and torch.equal(grid[:, 2], clean)
    assert_close(grid[:, 1], model.repair(damaged, mask), rtol=0, atol=0)
    attention = pictures["attention"].view(3, 3, 3, 16, 16)
    assert attention.min() >= -1 and attention.max() <= 1
    assert model.grid_nrow == 9


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data.init_args.task=restore"], "the generator's use_mask must be false"),  # linked from the data
        (["--model.init_args.hole_weight=0"], "hole_weight must be a finite number > 0"),
    ],
)
def test_bad_repair_configuration_is_one_line_and_exit_2(args, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY_INPAINT, "--tracker=none", "--run_root", str(tmp_path), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1 and expected in lines[0], err
    assert not list(tmp_path.rglob("*.ckpt"))


def test_sample_metrics_of_noise_driven_generators_are_refused_at_start_up():
    from sagan.errors import UsageError
    from sagan.evaluation.metrics import SampleQuality

    model = _gan()
    model._trainer = SimpleNamespace(
        strategy=None, callbacks=[SampleQuality()], limit_val_batches=0, datamodule=_RepairData()
    )
    with pytest.raises(UsageError, match="set --metrics.features=null"):
        model.setup("fit")
    model._trainer.callbacks = [SampleQuality(features=None)]
    model.setup("fit")


def test_inpainting_trains_at_a_non_square_size(tmp_path):
    run = fit_repair(tmp_path, "--data.init_args.data.init_args.image_size=[16,24]", "--g_iters=1")
    model = load_module(run / "checkpoints" / "last.ckpt")
    assert model.generator.image_size == (16, 24) and model.discriminator.image_size == (16, 24)
    damaged, mask = torch.zeros(1, 1, 16, 24), torch.zeros(1, 1, 16, 24)
    mask[..., 4:10, 6:18] = 1
    assert model.repair(damaged, mask).shape == (1, 1, 16, 24)
