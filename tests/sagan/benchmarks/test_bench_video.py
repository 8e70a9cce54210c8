"""`sagan bench-quality --only video`: the no-motion baselines, and the whole table on a tiny budget (slow)."""

import json

import pytest
import torch

from sagan.commands import main
from sagan.benchmarks.video import frames_of, shuffled, static, write_strip


def test_static_clips_repeat_one_of_their_own_frames():
    clips = torch.rand(5, 6, 1, 4, 4)
    still = static(clips, torch.Generator().manual_seed(0))
    assert still.shape == clips.shape
    for clip, original in zip(still, clips):
        assert all(torch.equal(frame, clip[0]) for frame in clip)
        assert any(torch.equal(clip[0], frame) for frame in original)


def test_shuffled_clips_hold_their_own_frames_in_another_order():
    clips = torch.rand(5, 6, 1, 4, 4)
    mixed = shuffled(clips, torch.Generator().manual_seed(0))
    for clip, original in zip(mixed, clips):
        assert sorted(clip.flatten(1).sum(1).tolist()) == sorted(original.flatten(1).sum(1).tolist())
    assert not torch.equal(mixed, clips)


def test_frames_of_takes_evenly_spaced_frames_first_and_last_included():
    clips = torch.arange(2 * 16).float().view(2, 16, 1, 1, 1).expand(2, 16, 1, 3, 3)
    frames = frames_of(clips, 4)
    assert frames.shape == (8, 1, 3, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 5, 10, 15, 16, 21, 26, 31]
    assert frames_of(clips[:, :3], 4).shape == (6, 1, 3, 3)  # never more frames than a clip has


def test_strip_shows_one_clip_a_row_and_the_gif_its_frames(tmp_path):
    from PIL import Image

    clips = torch.rand(8, 5, 1, 6, 6) * 2 - 1
    strip, gif = write_strip(clips, tmp_path, n=3)
    with Image.open(strip) as picture:
        assert picture.size == (5 * 8 + 2, 3 * 8 + 2)  # 5 frames across, 3 clips down, 2-pixel padding
    with Image.open(gif) as animation:
        assert animation.n_frames == 5


@pytest.mark.slow
def test_bench_quality_video_prints_and_writes_the_table(tmp_path, capsys):
    main(["bench-quality", "--only", "video", "--video_iters", "2", "--video_eval_every", "1", "--video_samples", "256",
          "--video_real", "512", "--classifier_steps", "40", "--run_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| Video GAN (VideoSpriteGenerator), moving digits | 1 | 256 |" in out
    assert "| Video GAN (VideoSpriteGenerator), moving digits | 2 | 256 |" in out
    records = json.loads((tmp_path / "video_results.json").read_text())
    floor, still, mixed = records[-3:]
    assert floor["samples"] == still["samples"] == 256
    assert floor["fid"] < still["fid"] and floor["fid"] < mixed["fid"]  # even a briefly trained CNN sees it
    assert floor["frame_fid"] < records[0]["frame_fid"]  # real frames are digits, 2 iterations' are not
    assert still["change"] == 0 and floor["change"] > floor["compensated"] > 0
    assert (tmp_path / "video_strip.png").is_file() and (tmp_path / "video_samples.gif").is_file()
    assert (tmp_path / "video_table.md").read_text().startswith("| run |")
