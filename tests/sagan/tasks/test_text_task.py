"""System tests of the text GAN module: both phases on CPU with tiny networks and a tiny oracle."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from datamodules.text.oracle import OracleDataModule
from sagan.errors import UsageError
from sagan.evaluation.text_metrics import text_metrics
from sagan.losses import HingeLoss, RelativisticLoss
from sagan.models.text_transformer import TINY
from sagan.tasks.text import TextGAN
from sagan.vocabulary import Vocabulary


def _data() -> OracleDataModule:
    return OracleDataModule(num_train=64, num_valid=16, num_test=8, seq_len=6, vocab_size=11, batch_size=8)


def _gan(data: OracleDataModule | None = None, **kwargs) -> TextGAN:
    g_cls, g_kwargs = TINY["text-generator"]
    d_cls, d_kwargs = TINY["text-discriminator"]
    vocabulary = (data or _data()).vocabulary
    return TextGAN(g_cls(**g_kwargs), d_cls(**d_kwargs), vocabulary=vocabulary, **{"num_eval_samples": 8, **kwargs})


def _fit(model: TextGAN, max_steps: int, data: OracleDataModule | None = None, **trainer_kwargs) -> L.Trainer:
    trainer = L.Trainer(**{
        "default_root_dir": _fit.root, "max_steps": max_steps, "accelerator": "cpu", "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0, **trainer_kwargs,
    })
    trainer.fit(model, datamodule=data or _data())
    return trainer


@pytest.fixture(autouse=True)
def _run_directory(tmp_path):
    _fit.root = str(tmp_path)  # where the data module saves the vocabulary of a fit


def _copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _changed(before: dict, net: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in net.named_parameters())


def test_pretraining_moves_only_the_generator_and_logs_phase_0():
    model = _gan(pretrain_steps=3)
    g, d = _copy(model.generator), _copy(model.discriminator)
    trainer = _fit(model, max_steps=2)
    assert trainer.global_step == 2 and model.generator_steps == 2
    assert _changed(g, model.generator) and not _changed(d, model.discriminator)
    assert trainer.logged_metrics["train/phase"] == 0.0
    assert {"train/mle_loss"} <= set(trainer.logged_metrics) and "train/d_loss" not in trainer.logged_metrics


def test_adversarial_discriminator_step_leaves_the_generator_untouched():
    model = _gan(pretrain_steps=0, n_critic=2)
    g, d = _copy(model.generator), _copy(model.discriminator)
    trainer = _fit(model, max_steps=1)  # one D step (n_critic=2: G waits for the second)
    assert trainer.global_step == 1 and model.generator_steps == 0
    assert _changed(d, model.discriminator) and not _changed(g, model.generator)
    assert trainer.logged_metrics["train/phase"] == 1.0


def test_full_adversarial_iteration_moves_both_and_logs_its_keys():
    model = _gan(pretrain_steps=2, n_critic=1)
    g, d = _copy(model.generator), _copy(model.discriminator)
    trainer = _fit(model, max_steps=6)  # 2 MLE steps, then 2 x (D, G)
    assert model.generator_steps == 4 and model.adversarial_steps == 4
    assert _changed(g, model.generator) and _changed(d, model.discriminator)
    keys = set(trainer.logged_metrics)
    assert {"train/d_loss", "train/d_real", "train/d_fake", "train/g_loss", "train/beta", "train/phase"} <= keys
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in trainer.logged_metrics.values())


def test_step_accounting_matches_the_cli_budget():
    config = {"pretrain_steps": 5, "n_critic": 2}
    assert TextGAN.optimizer_steps(3, config) == 3  # stops inside pre-training
    assert TextGAN.optimizer_steps(8, config) == 5 + 3 * 3
    model = _gan(pretrain_steps=5, n_critic=2)
    _fit(model, max_steps=TextGAN.optimizer_steps(7, config))
    assert model.generator_steps == 7


@pytest.mark.parametrize(
    ("schedule", "expected"), [("exp", [1.0, 10.0, 100.0, 100.0]), ("linear", [1.0, 50.5, 100.0, 100.0]), ("constant", [100.0] * 4)]
)
def test_inverse_temperature_schedule(schedule, expected, monkeypatch):
    model = _gan(pretrain_steps=10, n_critic=1, beta_max=100.0, beta_steps=4, beta_schedule=schedule)
    values = []
    for g_iteration in (0, 2, 4, 8):
        monkeypatch.setattr(TextGAN, "global_step", property(lambda self, i=g_iteration: 10 + 2 * i))
        values.append(model.inverse_temperature())
    assert values == pytest.approx(expected)


def test_losses_run_without_a_trainer():
    model = _gan(loss=RelativisticLoss())
    real = torch.randint(0, 11, (4, 6))
    logits = model.generator(real)
    assert_close(model.mle_loss(real), F.cross_entropy(logits.reshape(-1, 11), real.reshape(-1)))
    _, fake = model.generator.sample(4, temperature=0.5)
    loss, stats = model.discriminator_loss(real, fake)
    d_real, d_fake = model.discriminator(real), model.discriminator(fake)
    assert_close(loss, F.softplus(d_fake - d_real).mean())
    assert_close(stats["train/d_fake"], d_fake.mean())
    assert_close(model.generator_loss(fake, real), F.softplus(d_real - d_fake).mean())
    hinge = _gan(loss=HingeLoss())
    assert_close(hinge.generator_loss(fake), -hinge.discriminator(fake).mean())


def test_validation_logs_text_metrics_and_nll_oracle():
    """The logged BLEU / Self-BLEU / NLL-oracle are those of the generated samples against the held-out split."""
    data = _data()
    model = _gan(data, pretrain_steps=2)
    torch.manual_seed(0)
    fixed = torch.randint(1, 11, (8, 6))  # what the generator "draws" at validation
    model.sample = lambda n, generator=None, batch_size=256: fixed[:n]
    trainer = _fit(model, max_steps=2, data=data, limit_val_batches=2, val_check_interval=2, check_val_every_n_epoch=None)
    metrics = trainer.logged_metrics
    references = torch.cat([batch[0] for batch in data.val_dataloader()][:2])  # the 2 validation batches
    expected = text_metrics(model._ids(fixed), model._ids(references))
    for name in ("bleu2", "bleu3", "bleu4", "bleu5", "self_bleu2", "self_bleu5"):
        assert_close(metrics[f"val/{name}"].item(), expected[name], rtol=1e-6, atol=1e-6)
    assert expected["bleu2"] > 0  # random sequences of 10 tokens share bigrams with the held-out ones
    # NLL-oracle is the oracle's NLL per token of the model's samples
    assert_close(metrics["val/nll_oracle"].item(), data.oracle.nll(fixed).mean().item(), rtol=1e-6, atol=1e-6)
    assert metrics["val/nll"] > 0


def test_fixed_samples_are_reproducible_sentences():
    model = _gan(grid_size=3)
    a, b = model.fixed_samples(), model.fixed_samples()
    assert a == b and len(a) == 3 and all(len(s.split()) == 6 for s in a)


def test_checkpoint_of_another_vocabulary_is_refused_before_loading_weights():
    model = _gan()
    checkpoint = {"vocabulary": model.vocabulary.to_dict()}
    model.on_load_checkpoint(checkpoint)  # same vocabulary: fine
    other = Vocabulary([str(i) for i in range(10, 21)])
    with pytest.raises(UsageError, match="vocabulary mismatch: the checkpoint"):
        model.on_load_checkpoint({"vocabulary": other.to_dict()})
    saved = {}
    model.on_save_checkpoint(saved)
    assert Vocabulary.from_dict(saved["vocabulary"]) == model.vocabulary


def test_rejects_bad_arguments():
    for kwargs in (dict(n_critic=0), dict(pretrain_steps=-1), dict(beta_max=0.5)):
        with pytest.raises(ValueError):
            _gan(**kwargs)


def test_attention_panels_draw_both_networks_without_touching_the_random_stream():
    model = _gan()
    model.generator.blocks[0].attention.dropout = 0.5  # dropout would draw from the global stream
    state = torch.get_rng_state()
    panels = model.attention_panels()
    assert sorted(panels) == ["discriminator.blocks.0.attention", "generator.blocks.0.attention"]
    assert model.training and torch.equal(torch.get_rng_state(), state)


def test_compiled_text_steps_train_as_eager(tmp_path):
    """`compile`: the MLE loss and the discriminator's loss run as one graph each (the base's compile_steps),
    compiled once, and train to the weights the eager steps give."""
    import torch._dynamo

    results = []
    for compile in (False, True):
        torch.manual_seed(0)
        data = _data()
        model = _gan(data, pretrain_steps=2, n_critic=1, compile=compile, compile_backend="eager")
        torch._dynamo.reset()
        _fit(model, max_steps=6, data=data)
        assert set(model._compiled) == ({"mle_loss", "discriminator_loss"} if compile else set())
        results.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    assert_close(results[1], results[0], rtol=0, atol=0)


def test_an_unknown_text_compile_backend_is_refused():
    with pytest.raises(ValueError, match="compile_backend must be one of"):
        _gan(compile_backend="no-such-backend")
