"""Masks from a folder of mask images: draws (choice, flips, turns, scale, crop), bad files, the fixed
validation subset, mixing with the generated kinds by weight, and the repair data module that uses them."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fit_repair
from PIL import Image

from datamodules.image.digits import DigitsDataModule
from datamodules.repair.damaged import RepairDataModule
from datamodules.repair.mask_folder import MaskFolder, MaskMix, read_hole
from datamodules.repair.masks import MaskGenerator, hole_ratio
from sagan.errors import UsageError


def _save(path: Path, hole: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(hole, 255, 0).astype(np.uint8)).convert(mode).save(path)
    return path


def make_mask_folder(root: Path) -> Path:
    """Three good masks of other sizes and shapes (one in a subfolder, one RGB JPEG-free PNG) and the bad
    kinds: not an image, an empty file, a truncated PNG, all hole, no hole."""
    corner = np.zeros((40, 60), bool)
    corner[:10, :15] = True  # a hole in the top-left corner only
    _save(root / "corner.png", corner)
    stripe = np.zeros((30, 30), bool)
    stripe[:, 12:18] = True
    _save(root / "more" / "stripe.png", stripe, "RGB")
    dots = np.random.default_rng(0).random((64, 48)) < 0.3
    _save(root / "dots.png", dots)
    (root / "notes.png").write_text("not an image")
    (root / "empty.png").write_bytes(b"")
    good = (root / "dots.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    _save(root / "all_hole.png", np.ones((20, 20), bool))
    _save(root / "no_hole.png", np.zeros((20, 20), bool))
    return root


@pytest.fixture
def folder(tmp_path) -> MaskFolder:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = MaskFolder(make_mask_folder(tmp_path / "masks"), scale=(1.0, 2.0))
    (warning,) = [str(w.message) for w in caught if "mask folder" in str(w.message)]
    assert warning.startswith("mask folder: skipped 5 of 8 mask files that cannot be used")
    for name, reason in [("notes.png", "not an image"), ("empty.png", "empty file"), ("all_hole.png", "all hole"),
                         ("no_hole.png", "no hole"), ("truncated.png", "truncated or corrupt")]:
        assert f"{name} ({reason})" in warning
    return masks


def test_bad_masks_are_left_out_and_named_in_one_warning(folder):
    assert sorted(p.name for p in folder.paths) == ["corner.png", "dots.png", "stripe.png"]


def test_draws_are_binary_of_the_image_size_and_follow_the_generator(folder):
    draws = [folder(24, 36, torch.Generator().manual_seed(s)) for s in range(40)]
    assert all(m.shape == (1, 24, 36) and set(m.unique().tolist()) <= {0.0, 1.0} for m in draws)
    ratios = hole_ratio(torch.stack(draws))
    assert (ratios > 0).all() and (ratios < 1).all()  # never all hole, never without a hole
    assert torch.equal(folder(24, 36, torch.Generator().manual_seed(3)), draws[3])
    assert len({tuple(m.flatten().tolist()) for m in draws}) > 30  # files, flips, turns, scales and crops vary


def test_flips_and_turns_move_a_corner_hole_to_every_corner(tmp_path):
    corner = np.zeros((32, 32), bool)
    corner[:8, :8] = True
    masks = MaskFolder(_save(tmp_path / "m" / "corner.png", corner).parent, scale=(1.0, 1.0))
    seen = set()
    for seed in range(60):  # scale 1 on a square: the whole mask; only flips and turns vary
        mask = masks(16, 16, torch.Generator().manual_seed(seed))[0]
        assert hole_ratio(mask[None, None]) == pytest.approx(1 / 16)
        seen.add((int(mask[:4, :4].all()), int(mask[:4, -4:].all()), int(mask[-4:, :4].all()), int(mask[-4:, -4:].all())))
    assert seen == {(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)}


def test_a_scale_of_one_cuts_the_mask_to_the_image_shape_only(tmp_path):
    stripe = np.zeros((30, 60), bool)
    stripe[:, 27:33] = True  # a vertical stripe in the middle of a 2:1 mask
    masks = MaskFolder(_save(tmp_path / "m" / "stripe.png", stripe).parent, scale=(1.0, 1.0))
    unturned = 0
    for seed in range(10):
        mask = masks(30, 60, torch.Generator().manual_seed(seed))[0]
        if mask[:, 27:33].all():  # not turned (flips leave a centred stripe be): the mask itself, bit for bit
            assert torch.equal(mask.bool(), torch.from_numpy(stripe))
            unturned += 1
    assert 0 < unturned < 10  # turned by 90 degrees, the stripe runs across the image instead


def test_inverted_masks_and_gray_levels(tmp_path):
    gray = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "levels.png")
    assert read_hole(tmp_path / "levels.png").tolist() == [[False, False, True, True]]
    assert read_hole(tmp_path / "levels.png", invert=True).tolist() == [[True, True, False, False]]


def test_validation_uses_a_fixed_subset_drawn_from_seed_and_index(folder):
    folder.val_order = folder.val_order[:2]
    first = [folder.fixed(i, 16, 16, seed=0) for i in range(6)]
    assert all(torch.equal(m, folder.fixed(i, 16, 16, seed=0)) for i, m in enumerate(first))
    assert not torch.equal(first[0], folder.fixed(0, 16, 16, seed=1))
    subset = {folder.paths[i] for i in folder.val_order}
    assert len(subset) == 2  # indices cycle through two masks only


def test_a_file_broken_during_the_run_is_named_once_and_left_out(folder):
    victim = folder.paths[0]
    victim.write_bytes(b"gone bad")
    with pytest.warns(UserWarning, match=f"skipping unreadable mask {victim}"):
        for seed in range(20):
            folder(16, 16, torch.Generator().manual_seed(seed))
    assert folder.failed == {victim}


def test_an_empty_or_missing_folder_is_a_start_up_error(tmp_path):
    (tmp_path / "none").mkdir()
    _save(tmp_path / "none" / "full.png", np.ones((8, 8), bool))
    with pytest.raises(UsageError, match="no usable mask in"), pytest.warns(UserWarning, match="all hole"):
        MaskFolder(tmp_path / "none")
    with pytest.raises(UsageError, match="mask folder not found"):
        MaskFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"scale\[0\] must be a finite number >= 1"):
        MaskFolder(tmp_path / "none", scale=(0.5, 1.0))


def test_mix_draws_each_source_by_its_weight(folder):
    mix = MaskMix({"folder": folder, "boxes": MaskGenerator("boxes")}, {"folder": 3.0, "boxes": 1.0})
    picks = []
    for seed in range(200):  # the choice comes first from the generator: replay it
        u = float(torch.rand((), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
        picks.append("boxes" if u < 0.25 else "folder")  # sources in name order: boxes, then folder
        expected = (MaskGenerator("boxes") if picks[-1] == "boxes" else folder)
        generator = torch.Generator().manual_seed(seed)
        torch.rand((), generator=generator, dtype=torch.float64)
        assert torch.equal(mix(16, 16, torch.Generator().manual_seed(seed)), expected(16, 16, generator))
    assert 30 < picks.count("boxes") < 70
    never = MaskMix({"folder": folder, "boxes": MaskGenerator("boxes")}, {"folder": 1.0, "boxes": 0.0})
    assert never.cumulative[0] == 0.0


def test_repair_data_trains_on_folder_masks_and_validates_on_the_fixed_subset(tmp_path):
    root = make_mask_folder(tmp_path / "masks")
    with pytest.warns(UserWarning, match="mask folder: skipped 5"):
        data = RepairDataModule(DigitsDataModule(batch_size=4, image_size=[16, 24], channels=1),
                                masks={"folder": 1.0, "boxes": 1.0}, mask_folder=str(root), val_masks=2)
    data.setup("fit")
    damaged, mask, clean, _ = next(iter(data.train_dataloader()))
    assert mask.shape == (4, 1, 16, 24) and torch.equal(damaged, clean * (1 - mask))
    val = [data.val_repair[i][1] for i in range(4)]
    assert all(torch.equal(m, data.folder.fixed(i, 16, 24, 0)) for i, m in enumerate(val))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(masks="folder"), "masks 'folder' needs mask_folder"),
        (dict(masks="boxes", mask_folder="."), "mask_folder needs masks 'folder'"),
        (dict(masks={"boxes": 1.0, "circles": 1.0}), "masks must be a kind"),
        (dict(masks={"boxes": -1.0}), r"masks\[boxes\] must be a finite number >= 0"),
        (dict(masks={"boxes": 0.0}), "must not all be 0"),
        (dict(mask_scale=(0.5, 1.0)), r"mask_scale\[0\] must be a finite number >= 1"),
        (dict(val_masks=0), "val_masks must be a finite number >= 1"),
    ],
)
def test_bad_mask_options_are_refused_in_one_line(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        RepairDataModule(DigitsDataModule(batch_size=4), **kwargs)


def test_inpainting_trains_on_own_masks_mixed_by_weight_through_the_cli(tmp_path):
    root = make_mask_folder(tmp_path / "masks")
    with pytest.warns(UserWarning, match="mask folder: skipped 5"):
        run = fit_repair(tmp_path, f"--data.init_args.mask_folder={root}", "--data.init_args.masks={folder: 0.7, lama_thick: 0.3}",
                         "--g_iters=1", "--trainer.limit_val_batches=0")
    assert (run / "checkpoints" / "last.ckpt").is_file()
    config = (run / "config.yaml").read_text()
    assert f"mask_folder: {root}" in config and "folder: 0.7" in config
