import torch
import pytest
from torch.testing import assert_close

from datamodules.digits import DigitsDataModule, held_out_split


def test_digits_shapes_range_and_labels():
    dm = DigitsDataModule(batch_size=16)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1  # background is black
    assert y.dtype == torch.long and 0 <= y.min() and y.max() <= 9
    assert dm.num_classes == 10 and dm.image_size == 32 and dm.channels == 1


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
