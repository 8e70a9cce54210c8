import pytest
import torch
from torch.testing import assert_close

from datamodules.image.digits import DigitsDataModule, held_out_split


def test_digits_shapes_range_and_labels():
    dm = DigitsDataModule(batch_size=16)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1  # background is black
    assert y.dtype == torch.long and 0 <= y.min() and y.max() <= 9
    assert dm.num_classes == 10 and dm.image_size == 32 and dm.channels == 1


def test_digits_at_a_non_square_size_are_the_middle_of_the_square_digits():
    wide = DigitsDataModule(batch_size=16, image_size=[32, 48])
    wide.setup("fit")
    assert wide.image_size == (32, 48) and "bilinear-32x48" in wide.fingerprint
    square = DigitsDataModule(batch_size=16, image_size=48)
    square.setup("fit")
    assert wide.train_set.tensors[0].shape[1:] == (1, 32, 48)
    assert_close(wide.train_set.tensors[0], square.train_set.tensors[0][..., 8:40, :], rtol=0, atol=0)


def test_digits_fixed_stratified_split():
    dm = DigitsDataModule()
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 1797
    assert len(dm.val_set) == 179
    val_labels = dm.val_set.tensors[1]
    assert torch.bincount(val_labels, minlength=10).min() >= 17  # every class held out
    # the split does not depend on the global seed
    torch.manual_seed(123)
    again = DigitsDataModule()
    again.setup()
    assert_close(again.val_set.tensors[0], dm.val_set.tensors[0], rtol=0, atol=0)


def test_split_is_disjoint_and_complete():
    labels = torch.arange(100) % 4
    train, held = held_out_split(labels, 0.2)
    assert len(set(train.tolist()) & set(held.tolist())) == 0
    assert sorted(train.tolist() + held.tolist()) == list(range(100))
    assert torch.bincount(labels[held]).tolist() == [5, 5, 5, 5]


def test_digits_rgb_64_and_unconditional():
    dm = DigitsDataModule(image_size=64, channels=3, use_labels=False)
    dm.setup()
    x, _ = dm.val_set[0]
    assert x.shape == (3, 64, 64)
    assert_close(x[0], x[2])
    assert dm.num_classes == 0


@pytest.mark.parametrize("kwargs", [dict(val_fraction=0.0), dict(channels=2), dict(batch_size=0)])
def test_digits_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        DigitsDataModule(**kwargs)


def test_fingerprint_describes_the_training_images():
    base = DigitsDataModule().fingerprint
    assert base == DigitsDataModule(batch_size=7, num_workers=2, use_labels=False).fingerprint  # same images
    assert base != DigitsDataModule(image_size=64).fingerprint
    assert base != DigitsDataModule(channels=3).fingerprint
    assert base != DigitsDataModule(split_seed=1).fingerprint


def test_image_datamodule_default_fingerprint_names_class_and_arguments():
    from datamodules.image.base import ImageDataModule

    class Folder(ImageDataModule):
        def __init__(self, root: str = "data", crop: int = 140, **kwargs):
            super().__init__(**kwargs)
            self.root, self.crop = root, crop

    assert "crop=140" in Folder().fingerprint and "image_size=32" in Folder().fingerprint
    assert Folder().fingerprint != Folder(crop=120).fingerprint
    assert Folder().fingerprint == Folder(batch_size=3).fingerprint


def test_stacked_digits_stack_three_digits_with_their_joint_label():
    from datamodules.image.digits import digits_tensors
    from datamodules.image.stacked_digits import StackedDigitsDataModule

    dm = StackedDigitsDataModule(batch_size=16, num_train=300, num_val=50)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert dm.channels == 3 and dm.num_classes == 0 and dm.dataset_classes == 1000
    images, labels = digits_tensors(32, 1)
    triple = dm.train_set.triples[0]
    image, label = dm.train_set[0]
    assert_close(image, images[triple, 0], rtol=0, atol=0)
    assert label.item() == 100 * labels[triple[0]] + 10 * labels[triple[1]] + labels[triple[2]]
    all_labels = torch.stack([dm.train_set[i][1] for i in range(300)])
    assert len(all_labels.unique()) > 200  # triples drawn independently: most of 300 are distinct
    # validation triples come from the held-out digits only
    train_idx, held_idx = set(dm.train_set.triples.flatten().tolist()), set(dm.val_set.triples.flatten().tolist())
    assert not train_idx & held_idx
    assert StackedDigitsDataModule(use_labels=True).num_classes == 1000
