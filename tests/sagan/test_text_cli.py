"""`sagan fit` on text: run directories, the two phases, bad input, resuming, W&B tables."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import EXPERIMENTS, TINY_ORACLE, TINY_TEXT_MODEL, fit_text, write_corpus

from sagan.commands import main
from sagan.vocabulary import Vocabulary


def _fit_corpus(tmp_path: Path, corpus: Path, *args: str) -> Path:
    main([
        "fit", "--config", str(EXPERIMENTS / "textgan_text.yaml"), f"--data.init_args.path={corpus}",
        "--data.init_args.batch_size=4", "--data.init_args.max_length=8", "--trainer.limit_val_batches=1",
        *TINY_TEXT_MODEL, "--run_root", str(tmp_path / "runs"), "--tracker=csv", *args,
    ])
    return sorted((tmp_path / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)[-1]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_oracle_run_has_both_phases_samples_metrics_and_the_vocabulary(tmp_path):
    run = fit_text(
        tmp_path, "--g_iters=6", "--model.pretrain_steps=3", "--samples.every_n_g_steps=3",
        "--trainer.log_every_n_steps=1",
    )
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3 + 3 * 2  # 3 MLE steps, then 3 x (D step + G step)
    assert Vocabulary.from_dict(checkpoint["vocabulary"]) == Vocabulary.load(run / "vocab.json")
    texts = sorted(p.name for p in (run / "samples").glob("text_*.txt"))
    assert texts == ["text_000000.txt", "text_000003.txt", "text_000006.txt"]
    lines = (run / "samples" / "text_000006.txt").read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split()) == 6 for line in lines)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/mle_loss", "train/phase", "train/d_loss", "train/g_loss", "train/beta"} <= set(header)
    assert {"val/nll", "val/nll_oracle", "val/bleu2", "val/bleu5", "val/self_bleu2"} <= set(header)
    recipe = json.loads((run / "val_recipe.json").read_text())  # BLEU's recipe: no extractor, the references' hash
    assert recipe["features"] == "none" and recipe["split"] == "val" and recipe["ema"] is False
    assert recipe["generated_samples"] >= 2 and recipe["real_samples"] >= 1 and len(recipe["real_set"]) == 16


def test_corpus_run_decodes_words(tmp_path):
    run = _fit_corpus(tmp_path, write_corpus(tmp_path / "corpus.txt"), "--g_iters=2", "--model.pretrain_steps=1")
    vocab = Vocabulary.load(run / "vocab.json")
    assert "cat" in vocab.tokens and vocab.has_specials
    words = set((run / "samples" / "text_000002.txt").read_text().split())
    assert words and words <= set(vocab.tokens)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "corpus not found"), (b"", "the corpus is empty"), (b"x\n", "too few for a train/valid/test split")],
)
def test_bad_corpus_is_one_line_and_exit_2(tmp_path, capsys, content, expected):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        _fit_corpus(tmp_path, corpus, "--g_iters=1")
    assert exit_info.value.code == 2
    assert expected in _error_line(capsys)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_resume_with_another_vocabulary_is_refused_and_nothing_is_lost(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = _fit_corpus(tmp_path, corpus, "--g_iters=2", "--model.pretrain_steps=1", "--name=r")
    last = run / "checkpoints" / "last.ckpt"
    saved_checkpoint, saved_vocab = last.read_bytes(), (run / "vocab.json").read_text()
    outside = tmp_path / "elsewhere.ckpt"  # resuming from a path outside the run: the checkpoint's own check
    shutil.copy(last, outside)
    write_corpus(corpus, ["completely new words appear here now"] * 8)
    for resume in ("last", str(outside)):
        with pytest.raises(SystemExit) as exit_info:
            _fit_corpus(tmp_path, corpus, "--g_iters=4", "--name=r", f"--resume={resume}")
        assert exit_info.value.code == 2
        assert "vocabulary mismatch" in _error_line(capsys)
    assert last.read_bytes() == saved_checkpoint and (run / "vocab.json").read_text() == saved_vocab


def test_resume_with_the_same_vocabulary_continues(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    first = _fit_corpus(tmp_path, corpus, "--g_iters=2", "--model.pretrain_steps=1", "--name=r")
    second = _fit_corpus(tmp_path, corpus, "--g_iters=3", "--model.pretrain_steps=1", "--name=r", "--resume=last")
    assert second == first
    assert torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1 + 2 * 2


def test_wandb_offline_run_gets_the_sample_tables(tmp_path):
    main(["fit", *TINY_ORACLE, "--g_iters=4", "--model.pretrain_steps=2", "--tracker=wandb", "--run_root", str(tmp_path)])
    offline = list(tmp_path.rglob("offline-run-*"))
    assert len(offline) == 1
    tables = {p.parent.name + "/" + p.name.split("_")[0] for p in offline[0].rglob("media/table/**/*.table.json")}
    assert {"samples/text", "val/samples"} <= tables
    table = json.loads(next(offline[0].rglob("media/table/val/samples_*.table.json")).read_text())
    assert table["columns"] == ["sample", "nll_oracle"] and len(table["data"]) == 4
