"""ImageNetDataModule: WordNet class folders in sorted order, a val/ folder or a held-out fraction, errors."""

import numpy as np
import pytest
import torch
from datafixtures import IMAGENET_CLASSES, make_imagenet
from PIL import Image
from torch.testing import assert_close

from datamodules.image.imagenet import ImageNetDataModule
from sagan.errors import UsageError


def test_classes_are_the_sorted_wnids_and_val_is_the_val_folder(tmp_path):
    root = make_imagenet(tmp_path, train_per_class=3, val_per_class=1)
    data = ImageNetDataModule(str(root), batch_size=2, image_size=16, num_workers=0)
    assert data.classes == sorted(IMAGENET_CLASSES) and data.num_classes == 3
    data.setup("fit")
    assert len(data.train_set) == 9 and len(data.val_set) == 3
    image, label = data.train_set[3]  # the first image of the second class
    assert int(label) == 1 and image.shape == (3, 16, 16)
    # the largest centered square of the 50x38 file, resized: the same pixels the folder module would read
    path = tmp_path / "imagenet" / "train" / IMAGENET_CLASSES[1] / f"{IMAGENET_CLASSES[1]}_0.JPEG"
    square = Image.open(path).convert("RGB").crop((6, 0, 44, 38)).resize((16, 16), Image.Resampling.BICUBIC)
    expected = torch.from_numpy(np.asarray(square, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert_close(image, expected, rtol=0, atol=1e-6)
    assert sorted(int(data.val_set[i][1]) for i in range(3)) == [0, 1, 2]
    assert "valid=val" in data.fingerprint


def test_without_a_val_folder_a_fraction_of_train_is_held_out(tmp_path):
    root = make_imagenet(tmp_path, train_per_class=4, with_val=False)
    data = ImageNetDataModule(str(root), batch_size=2, image_size=8, val_fraction=0.25, num_workers=0)
    data.setup("fit")
    assert len(data.train_set) == 9 and len(data.val_set) == 3
    assert "val_fraction=0.25" in data.fingerprint


def test_missing_or_mismatched_folders_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="imagenet/train"):
        ImageNetDataModule(str(tmp_path))
    root = make_imagenet(tmp_path)
    (root / "imagenet" / "val" / "n99999999").mkdir()
    Image.new("RGB", (8, 8)).save(root / "imagenet" / "val" / "n99999999" / "x.JPEG")
    with pytest.raises(UsageError, match="n99999999"):
        ImageNetDataModule(str(root))
    with pytest.raises(ValueError, match="val_fraction"):
        ImageNetDataModule(str(root), val_fraction=1.5)
