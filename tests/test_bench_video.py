"""`sagan bench-quality --only video`: the no-motion baselines, and the whole table on a tiny budget (slow)."""

import json

import pytest
import torch

from sagan.commands import main
from sagan.benchmarks.video import shuffled, static


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


@pytest.mark.slow
def test_bench_quality_video_prints_and_writes_the_table(tmp_path, capsys):
    main(["bench-quality", "--only", "video", "--video_iters", "2", "--video_eval_every", "1", "--video_samples", "256",
          "--video_real", "512", "--classifier_steps", "40", "--run_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| Video transformer GAN, moving digits | 1 | 256 |" in out and "| Video transformer GAN, moving digits | 2 | 256 |" in out
    records = json.loads((tmp_path / "video_results.json").read_text())
    floor, still, mixed = records[-3:]
    assert floor["samples"] == still["samples"] == 256
    assert floor["fid"] < still["fid"] and floor["fid"] < mixed["fid"]  # even a briefly trained CNN sees it
    assert (tmp_path / "video_table.md").read_text().startswith("| run |")
