"""`sagan repair`: any size and aspect ratio, mask polarity, known pixels kept exactly, folders, --damage,
and one line with exit status 2 (and nothing written) for each kind of bad input."""

from pathlib import Path

import numpy as np
import pytest
from conftest import EXPERIMENTS, TINY_INPAINT, fit_repair
from PIL import Image

from sagan.commands import main


@pytest.fixture(scope="module")
def inpaint_ckpt(tmp_path_factory) -> Path:
    """A tiny inpainting run on the digits (1 channel, stride 4), 2 generator iterations."""
    run = fit_repair(tmp_path_factory.mktemp("inpaint"), "--g_iters=2", "--trainer.limit_val_batches=0")
    return run / "checkpoints" / "last.ckpt"


def _png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def _image(tmp_path: Path, height: int = 24, width: int = 40, name: str = "photo.png") -> tuple[Path, np.ndarray]:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    return _png(tmp_path / name, pixels), pixels


def _mask(
    tmp_path: Path, height: int = 24, width: int = 40, name: str = "mask.png", value: int = 255
) -> tuple[Path, np.ndarray]:
    hole = np.zeros((height, width), dtype=bool)
    hole[5:15, 10:30] = True
    return _png(tmp_path / name, np.where(hole, value, 0).astype(np.uint8)), hole


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("size", ["fit", "native"])
def test_non_square_image_keeps_its_size_and_its_known_pixels(inpaint_ckpt, tmp_path, size, capsys):
    image, pixels = _image(tmp_path)
    mask, hole = _mask(tmp_path, value=7)  # any nonzero value is a hole
    out = tmp_path / "repaired.png"
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(image), "--mask", str(mask), "--out", str(out),
          "--size", size])
    repaired = _read(out)
    assert repaired.shape == pixels.shape and repaired.dtype == np.uint8
    assert np.array_equal(repaired[~hole], pixels[~hole])  # bit for bit in the written 8-bit PNG
    assert not np.array_equal(repaired[hole], pixels[hole])  # the holes are the network's
    assert f"repaired {image} -> {out}" in capsys.readouterr().out


def test_inverted_mask_gives_the_same_repair(inpaint_ckpt, tmp_path):
    image, _ = _image(tmp_path)
    mask, hole = _mask(tmp_path)
    inverted = _png(tmp_path / "inverted.png", np.where(hole, 0, 255).astype(np.uint8))
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(image), "--mask", str(mask),
          "--out", str(tmp_path / "a.png")])
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(image), "--mask", str(inverted), "--invert-mask",
          "--out", str(tmp_path / "b.png")])
    assert np.array_equal(_read(tmp_path / "a.png"), _read(tmp_path / "b.png"))


def test_a_folder_of_images_with_masks_matched_by_name(inpaint_ckpt, tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir(), masks.mkdir()
    _, first = _image(images, 24, 40, "a.png")
    _, second = _image(images, 32, 16, "b.png")
    _mask(masks, 24, 40, "a.png")
    _png(masks / "b.png", np.zeros((32, 16), dtype=np.uint8))  # no hole: copied as it is
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(images), "--mask", str(masks), "--out", str(out)])
    assert _read(out / "a.png").shape == first.shape
    assert np.array_equal(_read(out / "b.png"), second)


def test_an_empty_mask_copies_the_image_and_says_so(inpaint_ckpt, tmp_path, capsys):
    image, pixels = _image(tmp_path)
    mask = _png(tmp_path / "empty.png", np.zeros((24, 40), dtype=np.uint8))
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(image), "--mask", str(mask),
          "--out", str(tmp_path / "o.png")])
    assert np.array_equal(_read(tmp_path / "o.png"), pixels)
    assert "nothing to repair" in capsys.readouterr().out


def test_damage_writes_a_seeded_damaged_copy_and_its_mask_that_repair_takes(inpaint_ckpt, tmp_path):
    image, pixels = _image(tmp_path, 32, 48)
    for name in ("a", "b"):
        main(["repair", "--image", str(image), "--damage", "strokes", "--seed", "3",
              "--out", str(tmp_path / f"{name}.png")])
    damaged, hole = _read(tmp_path / "a.png"), _read(tmp_path / "a_mask.png") == 255
    assert np.array_equal(damaged, _read(tmp_path / "b.png"))  # seeded
    assert hole.any() and np.array_equal(damaged[~hole], pixels[~hole]) and (damaged[hole] == 128).all()
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(tmp_path / "a.png"),
          "--mask", str(tmp_path / "a_mask.png"),
          "--out", str(tmp_path / "repaired.png")])
    assert np.array_equal(_read(tmp_path / "repaired.png")[~hole], pixels[~hole])
    main(["repair", "--image", str(image), "--damage", "noise", "--out", str(tmp_path / "noisy.png")])
    assert _read(tmp_path / "noisy.png").shape == pixels.shape
    clean, damaged_folder = tmp_path / "clean", tmp_path / "damaged"  # a folder: masks go to <out>/masks/
    clean.mkdir()
    _image(clean, name="x.png")
    main(["repair", "--image", str(clean), "--damage", "boxes", "--out", str(damaged_folder)])
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(damaged_folder),
          "--mask", str(damaged_folder / "masks"), "--out", str(tmp_path / "repaired_folder")])
    assert _read(tmp_path / "repaired_folder" / "x.png").shape == (24, 40)


def test_a_restoration_checkpoint_repairs_without_a_mask_at_native_size(tmp_path, capsys):
    tiny_restore = ["--config", str(EXPERIMENTS / "restore_digits.yaml"), *TINY_INPAINT[2:]]
    main(["fit", *tiny_restore, "--g_iters=1", "--trainer.limit_val_batches=0", "--tracker=none",
          "--run_root", str(tmp_path / "runs")])
    (ckpt,) = tmp_path.glob("runs/restore_digits/*/checkpoints/last.ckpt")
    image, pixels = _image(tmp_path, 30, 21)  # not multiples of the stride: padded, then cropped back
    main(["repair", "--ckpt", str(ckpt), "--image", str(image), "--out", str(tmp_path / "restored.png")])
    restored = _read(tmp_path / "restored.png")
    assert restored.shape == pixels.shape and not np.array_equal(restored, pixels)
    mask, _ = _mask(tmp_path, 30, 21)
    with pytest.raises(SystemExit) as exit_info:
        main(["repair", "--ckpt", str(ckpt), "--image", str(image), "--mask", str(mask),
              "--out", str(tmp_path / "o.png")])
    assert exit_info.value.code == 2 and "takes no --mask" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def _bad_inputs(tmp_path: Path, trained_run: Path, inpaint_ckpt: Path) -> dict[str, tuple[list[str], str]]:
    image, _ = _image(tmp_path)
    mask, _ = _mask(tmp_path)
    other_size, _ = _mask(tmp_path, 24, 41, "wide.png")
    all_hole = _png(tmp_path / "all.png", np.full((24, 40), 255, dtype=np.uint8))
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    folder = tmp_path / "folder"
    folder.mkdir()
    _image(folder, name="a.png")
    _image(folder, name="b.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    _mask(masks, name="a.png")  # none for b.png
    ckpt = ["--ckpt", str(inpaint_ckpt)]
    return {
        "mask of another size": ([*ckpt, "--image", str(image), "--mask", str(other_size)], "must be the same size"),
        "all-hole mask": ([*ckpt, "--image", str(image), "--mask", str(all_hole)], "nothing known to repair from"),
        "unreadable image": ([*ckpt, "--image", str(garbage), "--mask", str(mask)], "cannot read image"),
        "unreadable mask": ([*ckpt, "--image", str(image), "--mask", str(garbage)], "cannot read image"),
        "missing image": ([*ckpt, "--image", str(tmp_path / "none.png"), "--mask", str(mask)], "image not found"),
        "missing mask": ([*ckpt, "--image", str(image), "--mask", str(tmp_path / "none.png")], "mask not found"),
        "no mask": ([*ckpt, "--image", str(image)], "give the holes with --mask"),
        "missing checkpoint": (["--ckpt", str(tmp_path / "none.ckpt"), "--image", str(image), "--mask", str(mask)],
                               "checkpoint not found"),
        "image GAN checkpoint": (["--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), "--image", str(image),
                                  "--mask", str(mask)], "as a sagan RepairGAN checkpoint"),
        "a mask missing in a folder": ([*ckpt, "--image", str(folder), "--mask", str(masks)], "no mask for b.png"),
        "damage with a checkpoint": ([*ckpt, "--image", str(image), "--damage", "strokes"], "takes no --ckpt"),
    }


def test_each_bad_input_is_one_line_exit_2_and_writes_nothing(inpaint_ckpt, trained_run, tmp_path, capsys):
    for name, (args, expected) in _bad_inputs(tmp_path, trained_run, inpaint_ckpt).items():
        out = tmp_path / "out" / "repaired.png"
        with pytest.raises(SystemExit) as exit_info:
            main(["repair", *args, "--out", str(out)])
        assert exit_info.value.code == 2, name
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
        assert "Traceback" not in err and len(lines) == 1 and expected in lines[0], (name, err)
        assert not (tmp_path / "out").exists(), name


def test_makefile_picks_the_repair_experiments_and_reaches_the_wrapped_root():
    import subprocess

    from conftest import REPO

    def make(*args: str) -> str:
        return subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    assert "--config experiments/inpaint_digits.yaml --data.init_args.data.init_args.root=/d" in make(
        "train", "MODEL=inpaint", "DATA_DIR=/d"
    )
    assert "--config experiments/restore_celeba.yaml --data.init_args.data.init_args.root=/d" in make(
        "train", "MODEL=restore", "DATA=celeba", "DATA_DIR=/d"
    )
    plain = make("train", "DATA=celeba", "DATA_DIR=/d")
    assert "--config experiments/sagan_celeba.yaml --data.init_args.root=/d" in plain
    assert "sagan repair --ckpt c --image i --mask m  --out o" in make("repair", "CKPT=c", "IMAGE=i", "MASK=m", "OUT=o")
    assert "sagan repair  --image i  --damage strokes --out o" in make("repair", "IMAGE=i", "DAMAGE=strokes", "OUT=o")


def test_the_run_wrote_repair_grids_and_attention_maps(inpaint_ckpt):
    samples = inpaint_ckpt.parent.parent / "samples"  # the tiny run above: grid_size 4, 2 generator iterations
    names = sorted(p.name for p in samples.glob("*.png"))
    assert names == ["attention_000000.png", "attention_000002.png", "grid_000000.png", "grid_000002.png"]
    for name in names:  # one row of 4 x (damaged | repaired | original), 32x32 images with 2-pixel gaps
        assert Image.open(samples / name).size == (2 + 12 * 34, 2 + 34)


# ------------------------------------------------------------- images read as the data loaders read them
def _known_pixels_kept(inpaint_ckpt, tmp_path, image: Path, capsys) -> tuple[np.ndarray, np.ndarray, str]:
    """Repairs `image` (24x40) with the standard mask; the output, the hole and what was printed."""
    mask, hole = _mask(tmp_path)
    out = tmp_path / "repaired.png"
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(image), "--mask", str(mask), "--out", str(out)])
    return _read(out), hole, capsys.readouterr().out


def test_a_16_bit_image_keeps_its_known_pixels_on_the_loaders_8_bit_scale(inpaint_ckpt, tmp_path, capsys):
    values = np.random.default_rng(1).integers(0, 65536, (24, 40)).astype(np.uint16)
    image = _png(tmp_path / "deep.png", values)
    assert Image.open(image).mode.startswith("I;16")
    repaired, hole, out = _known_pixels_kept(inpaint_ckpt, tmp_path, image, capsys)
    expected = np.rint(values / 257.0).astype(np.uint8)  # what datamodules.decode.to_channels gives the networks
    assert np.array_equal(repaired[~hole], expected[~hole])
    assert "more than 8 bits" in out


def test_a_palette_image_with_a_transparent_index_shows_white_there_as_in_training(inpaint_ckpt, tmp_path, capsys):
    indices = np.random.default_rng(2).integers(0, 4, (24, 40)).astype(np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 90, 90, 90, 200, 200, 200, 30, 30, 30] + [0] * 756)  # index 3: hidden dark colour
    image.save(tmp_path / "palette.png", transparency=3)
    repaired, hole, _ = _known_pixels_kept(inpaint_ckpt, tmp_path, tmp_path / "palette.png", capsys)
    expected = np.array([0, 90, 200, 255], dtype=np.uint8)[indices]  # transparent: composited over white
    assert np.array_equal(repaired[~hole], expected[~hole])


def test_colour_given_to_a_gray_model_is_said_in_one_line(inpaint_ckpt, tmp_path, capsys):
    rgb = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    repaired, hole, out = _known_pixels_kept(inpaint_ckpt, tmp_path, _png(tmp_path / "colour.png", rgb), capsys)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    assert repaired.ndim == 2 and np.array_equal(repaired[~hole], expected[~hole])
    assert [line for line in out.splitlines() if "is in colour" in line] != []
    gray = np.repeat(expected[..., None], 3, axis=2)  # colour that is gray already: nothing to say
    _, _, out = _known_pixels_kept(inpaint_ckpt, tmp_path, _png(tmp_path / "gray_rgb.png", gray), capsys)
    assert "is in colour" not in out


def test_out_with_a_trailing_slash_is_a_folder(inpaint_ckpt, tmp_path):
    image, _ = _image(tmp_path)
    mask, _ = _mask(tmp_path)
    main(["repair", "--ckpt", str(inpaint_ckpt), "--image", str(image), "--mask", str(mask),
          "--out", str(tmp_path / "newdir") + "/"])
    assert (tmp_path / "newdir" / "photo.png").is_file()
    main(["repair", "--image", str(image), "--damage", "boxes", "--out", str(tmp_path / "damaged") + "/"])
    assert (tmp_path / "damaged" / "photo.png").is_file() and (tmp_path / "damaged" / "photo_mask.png").is_file()


def test_two_images_of_one_name_in_a_folder_are_refused(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    _image(folder, name="x.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "x.jpg")
    with pytest.raises(SystemExit) as exit_info:
        main(["repair", "--image", str(folder), "--damage", "boxes", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "x.jpg" in err and "x.png" in err
    assert not (tmp_path / "out").exists()


def test_damage_of_a_one_pixel_image_returns_written_or_refused_in_one_line(tmp_path, capsys):
    import signal

    from datamodules.repair.degrade import PRESETS
    from datamodules.repair.masks import KINDS

    image = _png(tmp_path / "one.png", np.full((1, 1), 100, np.uint8))

    def too_long(*_):
        raise TimeoutError("--damage did not return")

    previous = signal.signal(signal.SIGALRM, too_long)
    try:
        for kind in dict.fromkeys([*KINDS, *PRESETS, "painted_scratches"]):
            signal.alarm(30)
            try:
                main(["repair", "--image", str(image), "--damage", kind, "--out", str(tmp_path / f"{kind}.png")])
                assert (tmp_path / f"{kind}.png").is_file(), kind
            except SystemExit as exit_info:
                err = capsys.readouterr().err
                assert exit_info.code == 2 and err.count("\n") == 1 and "1x1" in err, (kind, err)
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
