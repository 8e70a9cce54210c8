"""Tiny video folders written by tests into tmp_path: GIF clips, mp4 clips (PyAV), folders of frames,
and broken sources of every kind the video folder data module must leave out."""

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.video.decode import pyav_available


def moving_square(frames: int, width: int = 40, height: int = 32, seed: int = 0) -> list[np.ndarray]:
    """RGB frames [height, width, 3] uint8: a bright square moving right over a colored gradient."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 120, width, dtype=np.float64)[None, :, None] * rng.uniform(0.5, 1.0, 3)
    out = []
    for t in range(frames):
        frame = np.broadcast_to(base, (height, width, 3)).copy()
        x = (2 * t + seed) % (width - 8)
        frame[10:18, x : x + 8] = 255
        out.append(frame.astype(np.uint8))
    return out


def write_gif(path: Path, frames: list[np.ndarray]) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def write_frames(folder: Path, frames: list[np.ndarray], suffix: str = ".png") -> Path:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:04d}{suffix}")
    return folder


def write_mp4(path: Path, frames: list[np.ndarray]) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def make_video_folder(root: Path, num_frames: int = 16, broken: bool = False, mp4: bool | None = None) -> Path:
    """`<root>/videos/`: 2 GIFs, 2 frame folders (one of two windows), 2 mp4s (by default when PyAV is installed) and, with
    `broken`, one source of each broken kind; returns the folder."""
    folder = root / "videos"
    folder.mkdir(parents=True)
    write_gif(folder / "a.gif", moving_square(num_frames, seed=1))
    (folder / "more").mkdir()
    write_gif(folder / "more" / "b.gif", moving_square(num_frames + 3, seed=2))
    write_frames(folder / "c", moving_square(num_frames, seed=3))
    write_frames(folder / "more" / "d", moving_square(2 * num_frames, seed=4), ".jpg")
    if mp4 if mp4 is not None else pyav_available():
        write_mp4(folder / "e.mp4", moving_square(num_frames + 2, seed=5))
        write_mp4(folder / "more" / "f.mp4", moving_square(num_frames, seed=6))
    if broken:
        (folder / "empty.mp4").write_bytes(b"")
        (folder / "notes.mp4").write_text("not a video\n")
        write_gif(folder / "short.gif", moving_square(num_frames // 2, seed=7))
        data = write_gif(folder / "cut.gif", moving_square(num_frames, seed=8)).read_bytes()
        (folder / "cut.gif").write_bytes(data[: len(data) // 3])
        bad = write_frames(folder / "g", moving_square(num_frames, seed=9))
        (bad / "0005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


def make_class_video_folder(root: Path, num_frames: int = 16) -> Path:
    """`<root>/classes/{run,walk}/`: a GIF and a frame folder per class; returns the folder."""
    folder = root / "classes"
    for k, name in enumerate(("run", "walk")):
        (folder / name).mkdir(parents=True)
        write_gif(folder / name / "x.gif", moving_square(num_frames, seed=10 + k))
        write_frames(folder / name / "y", moving_square(num_frames, seed=20 + k))
    return folder
