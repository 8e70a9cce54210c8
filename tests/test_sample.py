import pytest
from PIL import Image

from sagan.cli import main


def test_sample_writes_grid_and_single_images(trained_run, tmp_path):
    out = tmp_path / "samples"
    main(["sample", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), "--n", "5", "--label", "3", "--out", str(out)])
    singles = sorted(out.glob("0*.png"))
    assert len(singles) == 5 and (out / "grid.png").is_file()
    assert Image.open(singles[0]).size == (32, 32)


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


def test_sample_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--ckpt", str(tmp_path / "none.ckpt")])
    assert "checkpoint not found" in capsys.readouterr().err
