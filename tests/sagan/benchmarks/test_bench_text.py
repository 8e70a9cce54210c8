"""The text GAN's quality-diversity sweep (`sagan bench-quality --only text`), its softmax temperature and chart."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import fit_text
from torch.testing import assert_close

from sagan.benchmarks import text as bench_text
from sagan.commands import main
from sagan.errors import UsageError
from sagan.evaluation.recipe import tensor_fingerprint
from sagan.models.text_transformer import TINY, gumbel_noise
from sagan.visualization.line_plot import COLOURS, Curve, line_chart


def _generator():
    cls, kwargs = TINY["text-generator-2-layers"]
    torch.manual_seed(0)
    return cls(**kwargs)


def test_softmax_temperature_draws_from_the_tempered_logits():
    g = _generator()
    tokens, soft = g.sample(6, temperature=0.5, generator=torch.Generator().manual_seed(3), softmax_temperature=0.7)
    gumbel = gumbel_noise((6, g.seq_len, g.vocab_size), torch.device("cpu"), torch.Generator().manual_seed(3))
    logits = g(tokens) / 0.7
    assert torch.equal((logits + gumbel).argmax(-1), tokens)
    assert_close(soft, torch.softmax((logits + gumbel) / 0.5, dim=-1))
    plain, _ = g.sample(6, generator=torch.Generator().manual_seed(3))
    same, _ = g.sample(6, generator=torch.Generator().manual_seed(3), softmax_temperature=1.0)
    assert torch.equal(plain, same)  # temperature 1 is the model itself, draw for draw
    with pytest.raises(ValueError, match="softmax_temperature"):
        g.sample(2, softmax_temperature=0.0)


def test_lower_softmax_temperature_concentrates_the_samples():
    g = _generator()
    with torch.no_grad():
        g.head.bias.copy_(torch.linspace(0, 2, g.vocab_size))  # a clear favourite token
    cold, _ = g.sample(2000, generator=torch.Generator().manual_seed(0), softmax_temperature=0.25)
    warm, _ = g.sample(2000, generator=torch.Generator().manual_seed(0), softmax_temperature=4.0)
    favourite = g.vocab_size - 1
    assert (cold == favourite).float().mean() > 2 * (warm == favourite).float().mean()


def test_line_chart_draws_each_curve_in_its_colour():
    curves = [Curve("MLE", [(7.8, 9.8, "1"), (7.9, 9.1, "0.8")]), Curve("GAN", [(8.1, 8.2, "1")])]
    image = line_chart(curves, "title", "x", "y", size=(400, 300))
    assert image.size == (400, 300)
    colours = {colour for _, colour in image.getcolors(400 * 300)}
    assert COLOURS[0] in colours and COLOURS[1] in colours
    with pytest.raises(ValueError, match="at least one point"):
        line_chart([Curve("empty")], "t", "x", "y")


def test_sweep_scores_the_mle_checkpoint_and_the_gan_at_each_temperature(tmp_path, capsys):
    # 3 MLE steps, then 6 iterations of D + G: optimizer steps 3, 5, 7, ..., 15 after each batch
    run = fit_text(tmp_path, "--g_iters=9", "--model.pretrain_steps=3", "--checkpoint.every_n_train_steps=3")
    out = tmp_path / "bench"
    main(["bench-quality", "--only", "text", "--text_run", str(run), "--text_samples", "16",
          "--text_temperatures", "0.5", "1.0", "--run_root", str(out)])
    assert "| model | t = 0.5 | t = 1 |" in capsys.readouterr().out
    records = json.loads((out / "text_results.json").read_text())
    # checkpoints at steps 3 (pre-training's end), 9 (3 iterations of D + G) and 15 (6, the last)
    names = ["MLE", "GAN, 3 it.", "GAN, 6 it."]
    assert [(r["model"], r["temperature"]) for r in records] == [(m, t) for m in names for t in (0.5, 1.0)]
    mle = torch.load(records[0]["checkpoint"], weights_only=True)
    assert mle["global_step"] == 3 and records[4]["checkpoint"].endswith("last.ckpt")
    # NLL-test at temperature 1 is the generator's own NLL of the test split
    data = bench_text.oracle_data(run)
    from sagan.training.checkpoints import load_module

    generator = load_module(records[4]["checkpoint"]).generator
    test = data.test_set.tensors[0]
    with torch.no_grad():
        expected = F.cross_entropy(generator(test).flatten(0, 1), test.flatten()).item()
    assert records[5]["nll_test"] == pytest.approx(expected, rel=1e-5)
    recipe = records[0]["score_recipe"]  # what the numbers are comparable by: the test split, 16 samples
    assert recipe["split"] == "test" and recipe["real_samples"] == len(test) and recipe["generated_samples"] == 16
    assert recipe["real_set"] == tensor_fingerprint(test) and all(r["score_recipe"] == recipe for r in records)
    assert (out / "text_quality_diversity.png").stat().st_size > 0
    assert "GAN, 6 it., samples at temperature 1" in (out / "text_samples.md").read_text()


def test_a_run_without_a_checkpoint_at_the_end_of_pretraining_is_refused(tmp_path):
    run = fit_text(tmp_path, "--g_iters=5", "--model.pretrain_steps=3", "--checkpoint.every_n_train_steps=4")
    with pytest.raises(UsageError, match="end of pre-training"):
        bench_text.run_checkpoints(run)


def test_relgan_discriminator_reads_ids_as_one_hot_and_trains_in_the_text_gan(tmp_path):
    import lightning as L

    from datamodules.text.oracle import OracleDataModule
    from sagan.models.text_relgan_discriminator import TINY as RELGAN_TINY
    from sagan.tasks.text import TextGAN

    d_cls, d_kwargs = RELGAN_TINY["relgan-discriminator"]
    torch.manual_seed(0)
    d = d_cls(**d_kwargs)
    ids = torch.randint(0, d.vocab_size, (5, d.seq_len))
    assert_close(d(ids), d(F.one_hot(ids, d.vocab_size).float()))  # token ids are their one-hot vectors
    data = OracleDataModule(num_train=64, num_valid=16, num_test=8, seq_len=6, vocab_size=11, batch_size=8)
    model = TextGAN(_generator().__class__(**TINY["text-generator"][1]), d, vocabulary=data.vocabulary,
                    pretrain_steps=1, n_critic=1, num_eval_samples=8)
    before = {k: v.detach().clone() for k, v in d.named_parameters()}
    trainer = L.Trainer(default_root_dir=str(tmp_path), max_steps=5, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    unmoved = [k for k, v in d.named_parameters() if torch.equal(before[k], v)]
    assert unmoved == ["head.2.bias"]  # every D parameter moved but the last bias, which cancels in D(real) - D(fake)
