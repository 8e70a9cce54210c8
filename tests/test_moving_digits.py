"""Moving digits: deterministic clips, shapes and ranges, bouncing motion, and a split by digit identity."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from datamodules.image.digits import digits_tensors, held_out_split
from datamodules.video.moving_digits import MovingDigitsDataModule, bounce


def _data(**kwargs) -> MovingDigitsDataModule:
    data = MovingDigitsDataModule(**{"num_train": 40, "num_val": 20, **kwargs})
    data.setup()
    return data


def test_clips_are_the_same_in_every_run_and_change_with_the_seed():
    torch.manual_seed(1)
    first = _data()
    torch.manual_seed(2)  # the global seed plays no part
    second = _data()
    for i in (0, 17, 39):
        assert_close(first.train_set[i][0], second.train_set[i][0], rtol=0, atol=0)
    assert not torch.equal(first.train_set[0][0], _data(seed=1).train_set[0][0])


@pytest.mark.parametrize(("size", "channels"), [(32, 1), (64, 3)])
def test_shapes_ranges_and_loader(size, channels):
    data = _data(image_size=size, channels=channels, batch_size=4)
    clips, labels = next(iter(data.train_dataloader()))
    assert clips.shape == (4, 16, channels, size, size) and clips.dtype == torch.float32
    assert clips.min() == -1 and clips.max() <= 1 and clips.max() > 0.5  # black background, bright strokes
    assert labels.tolist() == [0, 0, 0, 0] and data.num_classes == 0 and data.num_frames == 16
    assert_close(clips[:, :, 0], clips[:, :, -1])  # color: the gray value repeated
    assert data.digit_size == round(size * 7 / 16)


def test_digits_bounce_inside_the_frame():
    # the closed form against a step-by-step simulation that reflects at the walls
    start, velocity, limit = torch.tensor([3.0, 10.0]), torch.tensor([2.5, -4.0]), 18.0
    expected, position, speed = [], start.clone(), velocity.clone()
    for _ in range(30):
        expected.append(position.clone())
        position += speed
        for k in range(2):
            if position[k] < 0:
                position[k], speed[k] = -position[k], -speed[k]
            if position[k] > limit:
                position[k], speed[k] = 2 * limit - position[k], -speed[k]
    assert_close(bounce(start, velocity, torch.arange(30.0), limit).T, torch.stack(expected), rtol=0, atol=1e-4)


def test_a_frame_is_both_digits_pasted_at_their_places():
    data = _data()
    clips = data.train_set
    clip, _ = clips[5]
    digits, _ = digits_tensors(data.digit_size, 1)
    corners = clips.positions(5).round().long().numpy()  # [2, T, 2]
    s = data.digit_size
    for t in (0, 7, 15):
        canvas = np.zeros((32, 32), np.float32)
        for k in range(2):
            row, col = corners[k, t]
            patch = (digits[clips.digits[5, k], 0].numpy() + 1) / 2
            canvas[row : row + s, col : col + s] = np.maximum(canvas[row : row + s, col : col + s], patch)
        assert_close(clip[t, 0], torch.from_numpy(canvas * 2 - 1))
    assert not torch.equal(clip[0], clip[15])  # the digits move


def test_train_and_validation_clips_use_disjoint_digit_images():
    data = _data(num_train=500, num_val=200)
    _, labels = digits_tensors(8, 1)
    train, held = held_out_split(labels, 0.1, 0)
    used_train, used_val = set(data.train_set.digits.flatten().tolist()), set(data.val_set.digits.flatten().tolist())
    assert used_train <= set(train.tolist()) and used_val <= set(held.tolist())
    assert not used_train & used_val
    assert len(used_val) > 100  # most held-out digits appear


def test_speed_range():
    clips = _data(num_train=300, speed=(0.05, 0.1)).train_set
    per_frame = clips.velocity.norm(dim=-1)
    assert per_frame.min() >= 0.05 * 32 - 1e-4 and per_frame.max() <= 0.1 * 32 + 1e-4


@pytest.mark.parametrize(
    "kwargs",
    [dict(image_size=8), dict(num_frames=1), dict(channels=2), dict(num_train=0), dict(speed=(0.2, 0.1)),
     dict(val_fraction=1.0), dict(batch_size=0)],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MovingDigitsDataModule(**kwargs)


def test_fingerprint_describes_the_training_clips():
    base = MovingDigitsDataModule().fingerprint
    assert base == MovingDigitsDataModule(batch_size=3, num_val=7, num_workers=1).fingerprint
    for change in (dict(seed=1), dict(num_frames=8), dict(image_size=64), dict(speed=(0.01, 0.02)), dict(num_train=5)):
        assert MovingDigitsDataModule(**change).fingerprint != base, change
