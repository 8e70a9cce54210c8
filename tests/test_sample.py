"""`sagan sample`: images from an image GAN's checkpoint, sentences from a text GAN's, one-line errors."""

from argparse import Namespace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import fit_text
from PIL import Image

from sagan.commands import main
from sagan.commands.sample import write_outputs
from sagan.training.checkpoints import load_module
from sagan.latent import noise
from sagan.tasks.text import TextGAN
from sagan.visualization.render import LINE
from sagan.vocabulary import Vocabulary


def test_sample_writes_grid_and_single_images(trained_run, tmp_path):
    out = tmp_path / "samples"
    main(["sample", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), "--n", "5", "--label", "3", "--out", str(out)])
    singles = sorted(out.glob("0*.png"))
    assert len(singles) == 5 and (out / "grid.png").is_file()
    assert Image.open(singles[0]).size == (32, 32)


def test_truncation_keeps_the_noise_within_the_threshold(trained_run, tmp_path):
    ckpt = str(trained_run / "checkpoints" / "last.ckpt")
    main(["sample", "--ckpt", ckpt, "--n", "10", "--out", str(tmp_path / "plain")])
    main(["sample", "--ckpt", ckpt, "--n", "10", "--truncation", "0.5", "--out", str(tmp_path / "truncated")])
    model = load_module(ckpt)
    z = noise(10, 8, 0.5, torch.Generator().manual_seed(0))  # the noise of seed 0, entries beyond 0.5 redrawn
    with torch.no_grad():
        expected = model(z, torch.arange(10) % 10)[3].add(1).div(2).squeeze(0)
    written = torch.from_numpy(np.asarray(Image.open(tmp_path / "truncated" / "000003.png"), dtype=np.float32)[..., 0] / 255)
    assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert (tmp_path / "plain" / "000003.png").read_bytes() != (tmp_path / "truncated" / "000003.png").read_bytes()
    # a grid of every class: one class per column, its name on top
    grid = Image.open(tmp_path / "plain" / "grid.png")
    assert grid.size == (2 + 10 * 34, LINE + 2 + 34)


def test_sample_is_reproducible_and_defaults_next_to_the_checkpoint(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    main(["sample", "--ckpt", str(ckpt), "--n", "3", "--out", str(tmp_path / "a")])
    main(["sample", "--ckpt", str(ckpt), "--n", "3"])
    default = trained_run / "checkpoints" / "last_samples"
    assert (tmp_path / "a" / "000002.png").read_bytes() == (default / "000002.png").read_bytes()


@pytest.mark.parametrize(("args", "expected"), [(["--label", "12"], "--label"), (["--n", "0"], "--n")])
def test_sample_bad_input_is_one_line(trained_run, args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("sagan: error") == 1 and expected in err


def test_sample_out_under_a_file_is_one_line(trained_run, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), "--n", "2",
              "--out", str(tmp_path / "afile" / "samples")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("sagan: error") == 1
    assert f"cannot write the samples to --out {tmp_path / 'afile' / 'samples'}: Not a directory" in err


def test_sample_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--ckpt", str(tmp_path / "none.ckpt")])
    assert "checkpoint not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """A tiny text GAN run on the oracle (vocabulary "0" ... "29", sequences of 6 tokens)."""
    return fit_text(tmp_path_factory.mktemp("text"), "--g_iters=4", "--model.pretrain_steps=2")


def test_text_checkpoint_samples_sentences_next_to_it(text_run, capsys):
    ckpt = text_run / "checkpoints" / "last.ckpt"
    main(["sample", "--ckpt", str(ckpt), "--n", "20"])
    out = text_run / "checkpoints" / "last_samples.txt"
    assert f"wrote 20 sentences to {out}" in capsys.readouterr().out
    lines = out.read_text(encoding="utf-8").splitlines()
    vocabulary = Vocabulary.load(text_run / "vocab.json")
    assert len(lines) == 20 and all(len(line.split()) == 6 for line in lines)
    assert {token for line in lines for token in line.split()} <= set(vocabulary.tokens)
    # they are the checkpoint's generator's sentences for the seed, decoded with its vocabulary
    model = load_module(ckpt)
    assert isinstance(model, TextGAN) and model.vocabulary == vocabulary
    tokens = model.sample(20, generator=torch.Generator().manual_seed(0))
    assert lines == [" ".join(vocabulary.tokens[i] for i in row) for row in tokens.tolist()]


def test_text_samples_are_reproducible_and_go_where_out_says(text_run, tmp_path):
    ckpt = str(text_run / "checkpoints" / "last.ckpt")
    main(["sample", "--ckpt", ckpt, "--n", "8", "--out", str(tmp_path / "a.txt")])
    main(["sample", "--ckpt", ckpt, "--n", "8", "--out", str(tmp_path / "b.txt")])
    main(["sample", "--ckpt", ckpt, "--n", "8", "--out", str(tmp_path), "--seed", "1"])  # a folder: a file in it
    first, again = (tmp_path / "a.txt").read_text(), (tmp_path / "b.txt").read_text()
    assert first == again and len(first.splitlines()) == 8
    assert (tmp_path / "last_samples.txt").read_text() != first


@pytest.mark.parametrize(("args", "expected"), [(["--label", "3"], "--label 3"), (["--nrow", "4"], "--nrow 4")])
def test_text_checkpoint_refuses_image_options_in_one_line(text_run, args, expected, capsys, tmp_path):
    out = tmp_path / "samples.txt"
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--ckpt", str(text_run / "checkpoints" / "last.ckpt"), "--out", str(out), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("sagan: error") == 1
    assert f"{expected}: " in err and "text GAN checkpoint" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"not a checkpoint", "is not a PyTorch checkpoint file"), (None, "names no module class")],
)
def test_a_file_that_is_no_sagan_checkpoint_is_one_line(tmp_path, capsys, content, expected):
    path = tmp_path / "other.ckpt"
    if content is None:
        torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--ckpt", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("sagan: error") == 1
    assert f"cannot load {path} as a sagan checkpoint: it {expected}" in err


def test_a_module_without_a_writer_is_refused():
    args = Namespace(n=2, label="all", out=None, seed=0, nrow=None)
    with pytest.raises(Exception, match="holds a LightningModule; sagan sample takes checkpoints of .*GAN"):
        write_outputs(L.LightningModule(), Path("x.ckpt"), args)
