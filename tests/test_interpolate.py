"""`sagan interpolate`: paths through seeds and classes end at the plain samples; strip and GIF files."""

import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from sagan.commands import main
from sagan.commands.interpolate import interpolation
from sagan.evaluation.checkpoint import load_gan
from sagan.latent import seed_noise


@pytest.fixture(scope="module")
def model(trained_run):
    return load_gan(trained_run / "checkpoints" / "last.ckpt")


def test_a_path_through_seeds_and_classes_ends_at_their_samples(model):
    with torch.no_grad():
        def sample(seed, label):
            return model(seed_noise(seed, 8)[None], torch.tensor([label]))[0]

        frames = interpolation(model, [0, 1], None, 4, "slerp")  # class 0 throughout
        assert frames.shape == (5, 1, 32, 32)
        assert_close(frames[0], sample(0, 0))
        assert_close(frames[-1], sample(1, 0))
        classes = interpolation(model, [2], [1, 7], 2, "lerp")  # one noise vector, class 1 to class 7
        assert_close(classes[0], sample(2, 1))
        assert_close(classes[-1], sample(2, 7))
        halfway = torch.zeros(1, 10).index_fill_(1, torch.tensor([1, 7]), 0.5)  # the two classes blended 50/50
        assert_close(classes[1], model(seed_noise(2, 8)[None], halfway)[0])
        assert (classes[1] - classes[0]).abs().max() > 0 and (classes[1] - classes[2]).abs().max() > 0


def test_writes_a_strip_and_a_gif(trained_run, tmp_path, capsys):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    main(["interpolate", "--ckpt", str(ckpt), "--seeds", "0,1,2", "--classes", "3", "--steps", "3", "--out", str(tmp_path)])
    assert Image.open(tmp_path / "strip.png").size == (2 + 4 * 34, 2 + 2 * 34)  # 2 rows of 4 frames of 32 px
    gif = Image.open(tmp_path / "interpolation.gif")
    assert gif.n_frames == 7 and gif.size == (128, 128)
    assert "7 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"), [(["--seeds", "0"], "nothing to interpolate"), (["--classes", "1,12"], "--classes"),
                           (["--seeds", "0,1,2", "--classes", "1,2"], "give one value or 3")],
)
def test_bad_input_is_one_line(trained_run, args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["interpolate", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("sagan: error") == 1 and expected in err
