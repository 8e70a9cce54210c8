"""Non-square images end to end: a [32, 48] digits run links the pair from data to networks, and its
samples, grids, attention panels, metrics and export come out 32 high and 48 wide."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import fit
from PIL import Image

from sagan.commands import main
from sagan.evaluation.checkpoint import load_gan
from sagan.visualization.render import LINE, PAD

HEIGHT, WIDTH = 32, 48


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return fit(tmp_path_factory.mktemp("wide"), f"--data.init_args.image_size=[{HEIGHT},{WIDTH}]", "--g_iters=2",
               "--samples.every_n_g_steps=1")


def test_the_pair_reaches_both_networks_and_the_run_config(wide_run):
    model = load_gan(wide_run / "checkpoints" / "last.ckpt")
    assert model.generator_ema.image_size == (HEIGHT, WIDTH) and model.discriminator.image_size == (HEIGHT, WIDTH)
    images = model(torch.randn(3, model.generator_ema.z_dim), torch.tensor([0, 1, 2]))
    assert images.shape == (3, 1, HEIGHT, WIDTH)
    config = yaml.safe_load((wide_run / "config.yaml").read_text())
    assert config["data"]["init_args"]["image_size"] == [HEIGHT, WIDTH]
    # the training grid: 8 columns of 48-pixel-wide, 32-pixel-high samples (torchvision's 2-pixel padding)
    grid = Image.open(sorted((wide_run / "samples").glob("grid_*.png"))[-1])
    assert (grid.width - 2) % (WIDTH + 2) == 0 and (grid.width - 2) // (WIDTH + 2) == 8


def test_samples_attention_and_export_keep_the_shape(wide_run, tmp_path):
    ckpt = wide_run / "checkpoints" / "last.ckpt"
    main(["sample", "--ckpt", str(ckpt), "--n", "3", "--out", str(tmp_path / "s")])
    assert Image.open(sorted((tmp_path / "s").glob("0*.png"))[0]).size == (WIDTH, HEIGHT)
    main(["attention", "--ckpt", str(ckpt), "--points", "2", "--out", str(tmp_path / "a")])
    panels = sorted((tmp_path / "a").glob("*.png"))
    assert panels
    for panel in map(Image.open, panels):  # tiles 96 high and 144 wide: the query column, then the map
        assert panel.size[1] == 2 * LINE + PAD + 2 * (96 + PAD)
        assert panel.size[0] >= PAD + 2 * (144 + PAD)
    main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "g.pt")])
    card = json.loads((tmp_path / "g.pt.json").read_text())
    assert card["output"]["shape"] == ["N", 1, HEIGHT, WIDTH] and card["image_size"] == [HEIGHT, WIDTH]
    program = torch.jit.load(str(tmp_path / "g.pt"))
    assert program(torch.randn(2, card["z_dim"]), torch.tensor([1, 2])).shape == (2, 1, HEIGHT, WIDTH)


def test_metrics_score_non_square_samples(wide_run):
    ckpt = wide_run / "checkpoints" / "last.ckpt"
    main(["eval", "--ckpt", str(ckpt), "--num_samples", "16", "--is_splits", "2", "--kid_subsets", "2"])
    metrics = json.loads(ckpt.with_name("last_eval.json").read_text())["metrics"]
    assert metrics["digits_fid"] > 0 and torch.isfinite(torch.tensor(metrics["digits_fid"]))
