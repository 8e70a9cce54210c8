"""`sagan attention`: panels of a checkpoint's attention layers, one-line errors; text GANs' heat maps."""

from argparse import Namespace

import pytest
from PIL import Image

from sagan.commands import main
from sagan.commands.attention import write_panels
from sagan.evaluation.checkpoint import load_gan
from sagan.errors import UsageError
from sagan.models.text_transformer import TINY
from sagan.tasks.text import TextGAN
from sagan.visualization.capture import attention_layers
from sagan.visualization.render import LINE, PAD


def test_panels_of_every_attention_layer_follow_the_seed(trained_run, tmp_path, capsys):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    main(["attention", "--ckpt", str(ckpt), "--points", "3", "--out", str(tmp_path / "a")])
    model = load_gan(ckpt)
    expected = [f"generator.{name}" for name in attention_layers(model.generator_ema)]
    expected += [f"discriminator.{name}" for name in attention_layers(model.discriminator)]
    assert sorted(p.stem for p in (tmp_path / "a").glob("*.png")) == sorted(expected)
    out = capsys.readouterr().out
    assert f"wrote {len(expected)} attention panels" in out and "gamma" in out
    for name in expected:
        panel = Image.open(tmp_path / "a" / f"{name}.png")
        assert panel.size[1] == 2 * LINE + PAD + 3 * (96 + PAD)  # 3 query points, 96-pixel tiles
    just_g = ["--layer", expected[0], "--d_input", "generated"]
    main(["attention", "--ckpt", str(ckpt), "--points", "3", *just_g, "--out", str(tmp_path / "b")])
    main(["attention", "--ckpt", str(ckpt), "--points", "3", *just_g, "--seed", "1", "--out", str(tmp_path / "c")])
    first = (tmp_path / "a" / f"{expected[0]}.png").read_bytes()
    assert (tmp_path / "b" / f"{expected[0]}.png").read_bytes() == first
    assert (tmp_path / "c" / f"{expected[0]}.png").read_bytes() != first


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--label", "12"], "--label"), (["--layer", "generator.nothing"], "generator.attention"),
        (["--points", "0"], "--points"),
    ],
)
def test_bad_input_is_one_line(trained_run, args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), "--d_input", "generated", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("sagan: error") == 1 and expected in err


def test_a_text_gan_gets_token_heat_maps(tmp_path):
    generator, discriminator = (cls(**kwargs) for cls, kwargs in (TINY["text-generator"], TINY["text-discriminator"]))
    model = TextGAN(generator, discriminator).eval()
    args = Namespace(label=None, points=4, d_input="real", seed=0, layer=None, out=str(tmp_path))
    line = write_panels(model, tmp_path / "last.ckpt", args)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "discriminator.blocks.0.attention.png", "generator.blocks.0.attention.png"
    ]
    assert "sentence:" in line
    with pytest.raises(UsageError, match="--points"):
        write_panels(model, tmp_path / "last.ckpt", Namespace(**{**vars(args), "points": 2}))
