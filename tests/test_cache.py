"""The prepared cache: built once, reused without decoding, rebuilt when what it holds would change."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from datafixtures import BROKEN, CELEBA_PARTITIONS, make_celeba, make_odd_folder
from PIL import Image
from torch.testing import assert_close

from datamodules.cache import PreparedCache, UInt8Images
from datamodules.image.celeba import CelebADataModule
from datamodules.image.folder import ImageFolderDataModule
from sagan.errors import UsageError

N_FILES = len(CELEBA_PARTITIONS) - CELEBA_PARTITIONS.count(2)  # train + valid: the test partition is not read


@pytest.fixture
def opened(monkeypatch) -> list:
    """Every image file PIL opens from now on."""
    calls = []
    real_open = Image.open

    def counting_open(path, *args, **kwargs):
        calls.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return calls


def celeba(root, **kwargs) -> CelebADataModule:
    data = CelebADataModule(str(root), batch_size=2, num_workers=0, cache=True, **kwargs)
    data.prepare_data()  # as the Trainer does: on one process per node, before setup
    data.setup("fit")
    return data


def everything(data) -> torch.Tensor:
    return torch.stack([data.train_set[i][0] for i in range(len(data.train_set))])


def test_cache_is_built_once_then_reused_without_decoding(tmp_path, opened):
    root = make_celeba(tmp_path)
    first = celeba(root)
    assert len(opened) == N_FILES  # each file decoded exactly once: the build is the start-up check
    cache_dir = root / "sagan_cache"
    files = {path.name: path.stat().st_mtime_ns for path in cache_dir.iterdir()}
    assert sorted(name.rsplit(".", 1)[1] for name in files) == ["json", "json", "npy", "npy"]  # no temporary left
    opened.clear()
    second = celeba(root)
    batches = list(second.train_dataloader()) + list(second.val_dataloader())
    assert opened == []  # neither setup nor two loaders opened a single JPEG
    assert sum(len(x) for x, _ in batches) == len(second.train_set) + len(second.val_set)
    assert {path.name: path.stat().st_mtime_ns for path in cache_dir.iterdir()} == files  # not rewritten
    assert_close(everything(second), everything(first), rtol=0, atol=0)


def test_cached_images_equal_decoded_ones(tmp_path):
    root = make_celeba(tmp_path)
    cached = celeba(root)
    decoded = CelebADataModule(str(root), batch_size=2, num_workers=0, cache=False)
    decoded.setup()
    assert isinstance(cached.train_set, UInt8Images)
    assert_close(everything(cached), everything(decoded), rtol=0, atol=0)


@pytest.mark.parametrize("change", [{"image_size": 32}, {"crop": 160}, {"channels": 1}])
def test_a_new_transform_makes_a_new_cache(tmp_path, opened, change):
    root = make_celeba(tmp_path)
    celeba(root)
    opened.clear()
    changed = celeba(root, **change)
    assert len(opened) == N_FILES
    assert len(list((root / "sagan_cache").glob("*.npy"))) == 4  # the old caches stay, two new ones
    expected = (change.get("channels", 3), change.get("image_size", 64), change.get("image_size", 64))
    assert changed.train_set[0][0].shape == expected


def test_changed_source_files_make_a_new_cache(tmp_path, opened):
    root = make_celeba(tmp_path)
    before = everything(celeba(root))
    Image.new("RGB", (178, 218), (0, 0, 255)).save(root / "celeba" / "img_align_celeba" / "000001.jpg")
    opened.clear()
    after = everything(celeba(root))
    assert len(opened) > 0
    assert_close(after[1:], before[1:], rtol=0, atol=0)
    assert after[0, 2].mean() > 0.9 and before[0, 2].mean() < 0.9  # the new blue image


def test_broken_files_are_left_out_and_named_again_on_reuse(tmp_path):
    folder = make_odd_folder(tmp_path / "odd")
    for attempt in range(2):  # build, then reuse
        data = ImageFolderDataModule(str(folder), batch_size=2, image_size=8, num_workers=0, cache=True,
                                     cache_dir=str(tmp_path / "cache"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data.prepare_data()
            data.setup()
        messages = [str(w.message) for w in caught if "skipped" in str(w.message)]
        assert len(messages) == 1 and all(name in messages[0] for name in BROKEN), (attempt, messages)
        assert len(data.train_set) + len(data.val_set) == len(list(folder.iterdir())) - len(BROKEN) - 1  # README.txt


def test_an_interrupted_build_leaves_no_cache(tmp_path):
    root = make_celeba(tmp_path)
    data = CelebADataModule(str(root), batch_size=2, num_workers=0, cache=True)
    paths, _ = data.split_files("train")
    cache = PreparedCache(data.cache_dir, data.split_fingerprint("train"), data.root, paths)
    calls = []

    def dies_on_the_third(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # pre-emption in the middle of the build
        return np.zeros((3, 64, 64), np.uint8)

    with pytest.raises(KeyboardInterrupt):
        cache.build(dies_on_the_third, (3, 64, 64), None, threads=1, check=lambda path: None)
    assert list(data.cache_dir.iterdir()) == []  # neither a half-written cache nor a temporary file
    assert cache.load(None) is None
    data.prepare_data()
    data.setup()
    assert cache.load(None) is not None and len(data.train_set) == CELEBA_PARTITIONS.count(0)


def test_cached_data_set_pickles_without_its_pixels(tmp_path):
    data = celeba(make_celeba(tmp_path))
    dataset = data.train_set
    _ = dataset[0]  # the memory map is open in this process
    clone = pickle.loads(pickle.dumps(dataset))  # what a worker started by spawn receives
    assert len(pickle.dumps(dataset)) < dataset.images.nbytes / 10
    assert_close(clone[3][0], dataset[3][0], rtol=0, atol=0)


def test_an_unwritable_cache_folder_is_a_usage_error(tmp_path):
    root = make_celeba(tmp_path)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    data = CelebADataModule(str(root), batch_size=2, num_workers=0, cache=True, cache_dir=str(blocker / "cache"))
    with pytest.raises(UsageError, match="cannot write the cache in"):
        data.prepare_data()
