"""The flicker figure: frame-to-frame change, and what is left of it after compensating the motion."""

import pytest
import torch
from torch.testing import assert_close

from sagan.evaluation.flicker import compensated_change, flicker, frame_change


def _square_clip(steps: list[tuple[int, int]], size: int = 12) -> torch.Tensor:
    """One clip [1, T, 1, size, size] in [-1, 1]: a 3x3 white square at each (row, column), black elsewhere."""
    clip = -torch.ones(1, len(steps), 1, size, size)
    for t, (r, c) in enumerate(steps):
        clip[0, t, 0, r : r + 3, c : c + 3] = 1
    return clip


def test_a_still_clip_changes_by_nothing():
    clip = _square_clip([(4, 4)] * 5)
    assert_close(frame_change(clip), torch.zeros(1))
    assert_close(compensated_change(clip), torch.zeros(1))


def test_a_translating_square_changes_but_its_motion_explains_all_of_it():
    clip = _square_clip([(2, 1), (3, 3), (4, 5), (5, 7)])  # one row down, two columns right a frame
    # each step the square leaves 9 pixels' worth except its overlap: old and new squares overlap in 2x1 pixels
    assert_close(frame_change(clip), torch.tensor([(9 - 2 + 9 - 2) / 144]))
    assert_close(compensated_change(clip), torch.zeros(1))


def test_a_square_that_blinks_keeps_its_change_after_compensation():
    clip = _square_clip([(4, 4)] * 4)
    clip[0, 1] = -1  # gone in the second frame
    expected = torch.tensor([(9 + 9 + 0) / 3 / 144])
    assert_close(frame_change(clip), expected)
    assert_close(compensated_change(clip), expected)  # no shift brings back a vanished square


def test_motion_beyond_the_search_range_is_not_compensated():
    clip = _square_clip([(6, 2), (6, 7)], size=16)
    assert_close(compensated_change(clip, max_shift=2), frame_change(clip))  # no shift reaches the new square
    assert_close(compensated_change(clip, max_shift=5), torch.zeros(1))


def test_flicker_averages_over_clips_in_any_batch_size():
    clips = torch.cat([_square_clip([(4, 4)] * 3), _square_clip([(1, 1), (2, 2), (3, 3)])])
    whole, pieces = flicker(clips), flicker(clips, batch_size=1)
    assert whole == pytest.approx(pieces)
    assert whole["change"] == pytest.approx(frame_change(clips).mean().item())
    assert whole["compensated"] == pytest.approx(0.0, abs=1e-7)


def test_bad_shift_range_is_refused():
    with pytest.raises(ValueError, match="max_shift"):
        compensated_change(torch.zeros(1, 2, 1, 4, 4), max_shift=-1)
