"""Reading clips: video files (PyAV), animated GIFs (PIL) and folders of frame images, and finding broken ones.

A clip source is a video file or a folder whose image files are the frames of one clip, in name order.
Every frame goes through the image pipeline of `datamodules/image/decode.py` (any mode to RGB or gray, a
centered square crop, a resize), so a frame of a video and a file of an image folder are treated alike.
GIFs are read with PIL; other video files (mp4, avi, mov, mkv, webm) need PyAV (`pip install av`, the
`video` extra), imported only when such a file is read.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.image.decode import CropResize, check_image, is_image_name, load_image, to_channels

PYAV_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
VIDEO_EXTENSIONS = (*PYAV_EXTENSIONS, ".gif")


def is_video_name(path: Path) -> bool:
    """Whether a file name has one of the video extensions read here (any case)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def needs_pyav(path: Path) -> bool:
    return path.suffix.lower() in PYAV_EXTENSIONS


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def frame_files(folder: Path) -> list[Path]:
    """The image files directly inside `folder`, in name order: the frames of a frame-folder clip."""
    return sorted(path for path in folder.iterdir() if path.is_file() and is_image_name(path))


def _frame(image: Image.Image, transform: CropResize, channels: int) -> np.ndarray:
    array = np.asarray(transform(to_channels(image, channels)), dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _pyav_frames(path: Path, wanted: set[int], last: int):
    """(index, PIL image) of the wanted frames of a video file, decoding from the start up to `last`."""
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                yield index, frame.to_image()
            if index >= last:
                return


def count_frames(source: Path) -> int:
    """Frames of a clip source (video file or frame folder). Raises on an unreadable file."""
    if source.is_dir():
        return len(frame_files(source))
    if source.suffix.lower() == ".gif":
        with Image.open(source) as image:
            return getattr(image, "n_frames", 1)
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return stream.frames
        return sum(1 for packet in container.demux(stream) if packet.size)  # containers without a frame count


def read_clip(source: Path, start: int, num_frames: int, stride: int, transform: CropResize, channels: int) -> np.ndarray:
    """Frames `start, start + stride, ...` (`num_frames` of them) -> uint8 `[T, C, size, size]`. Raises on
    any unreadable or missing frame."""
    indices = [start + stride * k for k in range(num_frames)]
    if source.is_dir():
        files = frame_files(source)
        return np.stack([load_image(files[i], transform, channels) for i in indices])
    frames: dict[int, np.ndarray] = {}
    if source.suffix.lower() == ".gif":
        with Image.open(source) as image:
            for i in indices:
                image.seek(i)
                frames[i] = _frame(image, transform, channels)
    else:
        for i, image in _pyav_frames(source, set(indices), indices[-1]):
            frames[i] = _frame(image, transform, channels)
    missing = [i for i in indices if i not in frames]
    if missing:
        raise ValueError(f"{source.name}: frame {missing[0]} could not be decoded")
    return np.stack([frames[i] for i in indices])


def check_clip(source: Path, needed: int, transform: CropResize, channels: int) -> tuple[int, str | None]:
    """(frames, why the clip cannot be used or None). Reasons: "missing", "empty file", "not a video",
    "truncated or corrupt", "frame <name>: <why>" for a frame folder, "<n> frames, fewer than <needed>".
    The first `needed` frames are decoded (all frames of a frame folder are checked)."""
    try:
        if not source.is_dir() and source.stat().st_size == 0:
            return 0, "empty file"
    except OSError:
        return 0, "missing"
    if source.is_dir():
        files = frame_files(source)
        for path in files:
            reason = check_image(path)
            if reason is not None:
                return 0, f"frame {path.name}: {reason}"
        frames = len(files)
    else:
        try:
            frames = count_frames(source)
        except Exception:  # PIL's and PyAV's errors for files that are no video
            return 0, "not a video"
    if frames < needed:
        return frames, f"{frames} frames, fewer than {needed}"
    if not source.is_dir():
        try:
            read_clip(source, 0, needed, 1, transform, channels)
        except Exception:
            return frames, "truncated or corrupt"
    return frames, None
