"""ImageFolderDataModule: flat and class folders, broken files skipped with one warning, start-up errors."""

import warnings

import pytest
import torch
from conftest import EXPERIMENTS
from datafixtures import BROKEN, ODD_MODES, make_class_folder, make_odd_folder
from torch.testing import assert_close

from datamodules.image.folder import ImageFolderDataModule, list_images
from sagan.commands import main
from sagan.errors import UsageError


def setup_with_warnings(data) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup("fit")
    return [str(w.message) for w in caught if "skipped" in str(w.message) or "unreadable" in str(w.message)]


def test_broken_files_are_skipped_counted_and_named_in_one_warning(tmp_path):
    folder = make_odd_folder(tmp_path / "odd")
    data = ImageFolderDataModule(str(folder), batch_size=2, image_size=16, num_workers=0)
    messages = setup_with_warnings(data)
    assert len(messages) == 1, messages
    total = len(ODD_MODES) + len(BROKEN)
    assert f"skipped {len(BROKEN)} of {total} image files" in messages[0]
    for name, reason in BROKEN.items():
        assert f"{name} ({reason})" in messages[0]
    assert len(data.train_set) + len(data.val_set) == len(ODD_MODES)
    images = torch.stack([data.train_set[i][0] for i in range(len(data.train_set))])
    assert images.shape == (len(data.train_set), 3, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1


def test_workers_get_through_every_batch(tmp_path):
    folder = make_odd_folder(tmp_path / "odd")
    data = ImageFolderDataModule(str(folder), batch_size=3, image_size=16, channels=1, num_workers=2)
    setup_with_warnings(data)
    loader = data.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    for _ in range(2):  # two epochs through the same workers
        batches = list(loader)
        assert len(batches) == len(data.train_set) // 3
        assert all(x.shape == (3, 1, 16, 16) for x, _ in batches)


def test_a_file_broken_after_the_check_is_skipped_not_fatal(tmp_path):
    folder = make_class_folder(tmp_path / "f", {"a": 5})
    data = ImageFolderDataModule(str(folder), batch_size=2, image_size=8, num_workers=0, val_fraction=0.2)
    assert setup_with_warnings(data) == []
    victim = data.train_set.paths[1]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated while the run goes on
    with pytest.warns(UserWarning, match=f"skipping unreadable image {victim}"):
        x, y = data.train_set[1]
    assert_close(x, data.train_set[2][0], rtol=0, atol=0)  # the next image stands in
    assert len(list(data.train_dataloader())) == 2


def test_class_subfolders_give_labels(tmp_path):
    folder = make_class_folder(tmp_path / "f", {"cats": 4, "dogs": 3})
    data = ImageFolderDataModule(str(folder), batch_size=2, image_size=8, use_labels=True, num_workers=0)
    assert data.classes == ["cats", "dogs"] and data.num_classes == 2
    data.setup()
    files = data.train_set.paths + data.val_set.paths
    labels = torch.cat([data.train_set.labels, data.val_set.labels]).tolist()
    assert len(files) == 7 and any(path.parent.name == "nested" for path in files)  # found recursively
    assert [("cats", "dogs")[label] for label in labels] == [path.relative_to(folder).parts[0] for path in files]
    assert len(data.val_set) == 1  # 1% of 7 rounds to 0: at least one is held out


def test_unconditional_by_default_and_flat_folders(tmp_path):
    folder = make_class_folder(tmp_path / "f", {"a": 2, "b": 2})
    assert ImageFolderDataModule(str(folder), num_workers=0).num_classes == 0
    flat = make_odd_folder(tmp_path / "flat")
    assert ImageFolderDataModule(str(flat), num_workers=0).classes == []
    with pytest.raises(UsageError, match="one subfolder per class"):
        ImageFolderDataModule(str(flat), use_labels=True)


def test_listing_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    folder = make_class_folder(tmp_path / "f", {"a": 2})
    (folder / ".thumbnails").mkdir()
    (folder / ".thumbnails" / "x.jpg").write_bytes(b"")
    (folder / "a" / "labels.csv").write_text("x\n")
    names = [path.relative_to(folder).as_posix() for path in list_images(folder)]
    assert names == ["a/a_1.jpg", "a/nested/a_0.jpg"]


def test_split_is_fixed_by_its_seed(tmp_path):
    folder = make_class_folder(tmp_path / "f", {"a": 10, "b": 10})
    first = ImageFolderDataModule(str(folder), val_fraction=0.25, num_workers=0)
    torch.manual_seed(123)
    again = ImageFolderDataModule(str(folder), val_fraction=0.25, num_workers=0)
    other = ImageFolderDataModule(str(folder), val_fraction=0.25, split_seed=1, num_workers=0)
    assert first.split_files("valid") == again.split_files("valid")
    assert first.split_files("valid") != other.split_files("valid")
    train, valid = first.split_files("train")[0], first.split_files("valid")[0]
    assert len(valid) == 5 and not set(train) & set(valid) and len(train) + len(valid) == 20


def test_fingerprint_names_folder_split_transform_size_and_channels(tmp_path):
    folder = make_class_folder(tmp_path / "f")
    data = ImageFolderDataModule(str(folder), image_size=32, channels=1, crop=40, resample="bilinear")
    assert data.fingerprint == f"folder({folder.resolve()}):train(val_fraction=0.01,seed=0):crop40-bilinear32:32x32:1ch"
    assert ImageFolderDataModule(str(folder), image_size=64).fingerprint != data.fingerprint


def test_no_images_is_a_start_up_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="0 images under"):
        ImageFolderDataModule(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="image folder not found"):
        ImageFolderDataModule(str(tmp_path / "nowhere"))


def test_only_broken_files_fail_at_setup(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.jpg", "b.png", "c.webp"):
        (folder / name).write_text("not an image")
    data = ImageFolderDataModule(str(folder), batch_size=1, num_workers=0)
    with pytest.raises(UsageError, match="no readable images in the train split"):
        setup_with_warnings(data)


def only_broken(path):
    path.mkdir()
    for name in ("a.jpg", "b.png"):
        (path / name).write_text("not an image")


@pytest.mark.parametrize(("make", "expected"), [
    (lambda path: path.mkdir(), "0 images under"),
    (lambda path: None, "image folder not found"),
    (only_broken, "no readable images in the train split"),  # found by the check in setup, before any step
])
def test_cli_start_up_errors_are_one_line_exit_2(tmp_path, capsys, make, expected):
    make(tmp_path / "images")
    with pytest.raises(SystemExit) as exit_info:
        main([
            "fit", "--config", str(EXPERIMENTS / "sagan_folder.yaml"), f"--data.init_args.root={tmp_path / 'images'}",
            "--run_root", str(tmp_path / "runs"), "--tracker=none", "--metrics.features=null",
        ])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1 and expected in lines[0], err


def test_symlink_loops_and_links_outside_are_walked_once_and_named(tmp_path):
    folder = make_class_folder(tmp_path / "data" / "imgs", {"a": 3, "b": 2})  # 5 images
    outside = make_class_folder(tmp_path / "elsewhere", {"c": 2})
    (folder / "self").symlink_to(".")  # a loop: followed, 5 images became 5 * (links + 1)...
    (folder / "a" / "up").symlink_to("..")  # a loop back to the root
    (folder / "b" / "twin.jpg").symlink_to(folder / "b" / "b_1.jpg")  # a second name for a file
    (folder / "out").symlink_to(outside)  # leads outside the folder
    (folder / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = ImageFolderDataModule(str(folder), val_fraction=0.2, use_labels=True, num_workers=0)
    names = sorted(p.relative_to(folder).as_posix() for p in data.files)
    assert names == ["a/a_1.jpg", "a/a_2.jpg", "a/nested/a_0.jpg", "b/b_1.jpg", "b/nested/b_0.jpg"]
    assert data.classes == ["a", "b"]
    train, valid = data.split_files("train")[0], data.split_files("valid")[0]
    assert not {p.resolve() for p in train} & {p.resolve() for p in valid}  # no validation image trains
    (message,) = [str(w.message) for w in caught if "symbolic links" in str(w.message)]
    assert message.startswith(f"folder: skipped 5 symbolic links under {folder}: ")
    for expected in ("a/up (-> .., a folder already listed)", "b/twin.jpg (-> ", "the same file as b/b_1.jpg)",
                     f"out (-> {outside}, outside the folder (follow_links_outside=true reads it))",
                     "self (-> ., a folder already listed)", "gone.jpg (-> "):
        assert expected in message, message
    # told to, it reads what lies outside, still once per real file
    data = ImageFolderDataModule(str(folder), val_fraction=0.2, use_labels=True, num_workers=0, follow_links_outside=True)
    assert sorted(p.relative_to(folder).as_posix() for p in data.files) == sorted(
        names + ["out/c/c_1.jpg", "out/c/nested/c_0.jpg"]
    )
    assert data.classes == ["a", "b", "out"]


def test_a_non_square_size_gives_images_of_that_shape_and_fingerprint(tmp_path):
    folder = make_class_folder(tmp_path / "f", size=(60, 40))  # 3:2 landscape JPEGs
    data = ImageFolderDataModule(str(folder), batch_size=2, image_size=[32, 48], val_fraction=0.2, num_workers=0)
    assert data.image_size == (32, 48)
    data.setup("fit")
    image, _ = data.train_set[0]
    assert image.shape == (3, 32, 48)
    assert data.fingerprint.endswith(":cropaspect-bicubic32x48:32x48:3ch")
    with pytest.raises(ValueError, match="crop cuts a square"):
        ImageFolderDataModule(str(folder), image_size=[32, 48], crop=40)
    with pytest.raises(ValueError, match=r"image_size \[32, 0\] must be one side or \[height, width\]"):
        ImageFolderDataModule(str(folder), image_size=[32, 0])


def test_a_non_square_cache_holds_that_shape(tmp_path):
    folder = make_class_folder(tmp_path / "f", size=(60, 40))
    data = ImageFolderDataModule(str(folder), batch_size=2, image_size=[16, 24], val_fraction=0.2, num_workers=0,
                                 cache=True, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    data.setup("fit")
    uncached = ImageFolderDataModule(str(folder), batch_size=2, image_size=[16, 24], val_fraction=0.2, num_workers=0)
    uncached.setup("fit")
    assert data.train_set[0][0].shape == (3, 16, 24)
    assert_close(data.train_set[0][0], uncached.train_set[0][0])
