"""The video folder: GIFs, mp4s and frame folders as clips; broken sources left out and named; classes; splits."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from videofixtures import make_class_video_folder, make_video_folder, moving_square

import datamodules.video.folder as videofolder
from datamodules.image.decode import CropResize
from datamodules.video.decode import pyav_available
from datamodules.video.folder import VideoFolderDataModule
from sagan.errors import UsageError

needs_av = pytest.mark.skipif(not pyav_available(), reason="PyAV is not installed")


def _all_clips(data) -> dict[str, list]:
    """Source name -> the first frames of its windows, over both splits."""
    out = {}
    for clips in (data.train_set, data.val_set):
        for i, (source, _) in enumerate(clips.windows):
            out.setdefault(str(source.relative_to(data.root)), []).append(clips[i][0])
    return out


@needs_av
def test_gifs_mp4s_and_frame_folders_become_clips(tmp_path):
    root = make_video_folder(tmp_path, num_frames=8)
    data = VideoFolderDataModule(str(root), batch_size=2, image_size=16, num_frames=8, num_workers=0, val_fraction=0.2)
    data.setup()
    clips = _all_clips(data)
    # d holds 16 frames: two windows of 8; the others one (b has 11 frames, e 10: the rest is left over)
    assert {name: len(found) for name, found in clips.items()} == {
        "a.gif": 1, "more/b.gif": 1, "c": 1, "more/d": 2, "e.mp4": 1, "more/f.mp4": 1}
    for found in clips.values():
        for clip in found:
            assert clip.shape == (8, 3, 16, 16) and clip.min() >= -1 and clip.max() <= 1
    # a frame folder's frame is its file through the image pipeline: largest centered square, bicubic resize
    expected = np.asarray(CropResize(16)(Image.fromarray(moving_square(8, seed=3)[5])), np.float32) / 127.5 - 1
    torch.testing.assert_close(clips["c"][0][5], torch.from_numpy(expected).permute(2, 0, 1))
    # the GIF and the second window of d hold their own frames (the square moves 2 px a frame)
    assert not torch.equal(clips["more/d"][0], clips["more/d"][1])
    gif = np.asarray(CropResize(16)(Image.fromarray(moving_square(8, seed=1)[3])), np.float32) / 127.5 - 1
    assert (clips["a.gif"][0][3] - torch.from_numpy(gif).permute(2, 0, 1)).abs().max() < 0.1  # GIF palette
    mp4 = np.asarray(CropResize(16)(Image.fromarray(moving_square(10, seed=5)[2])), np.float32) / 127.5 - 1
    assert (clips["e.mp4"][0][2] - torch.from_numpy(mp4).permute(2, 0, 1)).abs().mean() < 0.1  # lossy codec
    # the split is by source: no video gives clips to both splits
    train = {w[0] for w in data.train_set.windows}
    assert train and not train & {w[0] for w in data.val_set.windows}


@needs_av  # an .mp4 without PyAV stops setup with a UsageError naming `pip install av`
def test_broken_sources_are_left_out_and_named(tmp_path):
    root = make_video_folder(tmp_path, num_frames=8, broken=True)
    data = VideoFolderDataModule(str(root), batch_size=2, image_size=16, num_frames=8, num_workers=0, val_fraction=0.3)
    with pytest.warns(UserWarning) as caught:
        data.setup()
    (message,) = [str(w.message) for w in caught if "cannot be read" in str(w.message)]
    assert message.startswith("videos: skipped 5 of 11 clip sources that cannot be read: cut.gif (")
    for part in ("empty.mp4 (empty file)", "notes.mp4 (not a video)", "short.gif (4 frames, fewer than 8)",
                 "g (frame 0005.png: not an image)"):
        assert part in message, message
    sources = {str(s.relative_to(root)) for clips in (data.train_set, data.val_set) for s, _ in clips.windows}
    assert not sources & {"empty.mp4", "notes.mp4", "short.gif", "cut.gif", "g"}


def test_a_clip_that_breaks_later_is_replaced_by_the_next(tmp_path):
    root = make_video_folder(tmp_path, num_frames=8, mp4=False)
    data = VideoFolderDataModule(str(root), batch_size=1, image_size=16, num_frames=8, num_workers=0, val_fraction=0.2)
    data.setup()
    source, _ = data.train_set.windows[0]
    (source / "0003.png").write_bytes(b"garbage") if source.is_dir() else source.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipping unreadable clip"):
        clip, _ = data.train_set[0]
    torch.testing.assert_close(clip, data.train_set[1][0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named once
        data.train_set[0]


def test_class_subfolders_give_labels(tmp_path):
    root = make_class_video_folder(tmp_path, num_frames=4)
    data = VideoFolderDataModule(str(root), batch_size=1, image_size=8, num_frames=4, use_labels=True, num_workers=0,
                                 val_fraction=0.25, channels=1)
    data.setup()
    assert data.num_classes == 2 and data.classes == ["run", "walk"]
    for clips in (data.train_set, data.val_set):
        for (source, _), label in zip(clips.windows, clips.labels.tolist()):
            assert source.relative_to(root).parts[0] == data.classes[label]
    clip, _ = data.train_set[0]
    assert clip.shape == (4, 1, 8, 8)


def test_frame_stride_and_window_cap(tmp_path):
    root = make_video_folder(tmp_path, num_frames=8, mp4=False)  # 8, 11, 8 and 16 frames
    kwargs = dict(batch_size=1, image_size=8, num_frames=4, frame_stride=2, num_workers=0, val_fraction=0.2)
    data = VideoFolderDataModule(str(root), **kwargs)  # a window spans frames 0, 2, 4, 6; the next starts at 8
    data.setup()
    windows = sorted((str(s.relative_to(root)), start) for s, start in data.train_set.windows + data.val_set.windows)
    assert windows == [("a.gif", 0), ("c", 0), ("more/b.gif", 0), ("more/d", 0), ("more/d", 8)]
    clips = data.train_set if any(s.name == "c" for s, _ in data.train_set.windows) else data.val_set
    clip = clips[[s.name for s, _ in clips.windows].index("c")][0]
    frame = np.asarray(CropResize(8)(Image.fromarray(moving_square(8, seed=3)[2])), np.float32) / 127.5 - 1
    torch.testing.assert_close(clip[1], torch.from_numpy(frame).permute(2, 0, 1))  # the second frame is frame 2
    capped = VideoFolderDataModule(str(root), max_clips_per_video=1, **kwargs)
    capped.setup()
    assert len(capped.train_set) + len(capped.val_set) == 4


def test_start_up_errors(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="video folder not found"):
        VideoFolderDataModule(str(tmp_path / "missing"))
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "x.gif").write_bytes(b"")
    with pytest.raises(UsageError, match="need at least 2"):
        VideoFolderDataModule(str(tmp_path / "one"))
    root = make_video_folder(tmp_path, num_frames=4, mp4=False)
    (root / "x.mp4").write_bytes(b"")
    monkeypatch.setattr(videofolder, "pyav_available", lambda: False)
    with pytest.raises(UsageError, match="need PyAV: pip install av"):
        VideoFolderDataModule(str(root))
    with pytest.raises(UsageError, match="use_labels=true needs one subfolder per class"):
        VideoFolderDataModule(str(make_class_video_folder(tmp_path) / "run"), use_labels=True)
    data = VideoFolderDataModule(str(make_class_video_folder(tmp_path / "b")), batch_size=50, num_frames=4,
                                 num_workers=0, val_fraction=0.25)
    with pytest.raises(UsageError, match="fewer than batch_size=50"):
        data.setup()


@pytest.mark.parametrize("kwargs", [dict(num_frames=0), dict(frame_stride=0), dict(channels=2),
                                    dict(val_fraction=0.0), dict(max_clips_per_video=0)])
def test_rejects_bad_arguments(kwargs, tmp_path):
    with pytest.raises(ValueError):
        VideoFolderDataModule(str(tmp_path), **kwargs)
