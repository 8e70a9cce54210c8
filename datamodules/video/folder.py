"""Any folder of short videos: clip files and/or folders of frames; flat, or one subfolder per class.

    <root>/a.mp4, <root>/more/b.gif, <root>/c/000001.png ...          flat: unconditional
    <root>/<class>/x.avi, <root>/<class>/y/0001.jpg ...               class subfolders: labels with use_labels=true

A clip source is a video file (.mp4, .avi, .mov, .mkv, .webm, .m4v: PyAV; .gif: PIL) or a folder that
holds image files directly (its frames, in name order); folders are searched recursively, hidden ones
skipped. Each source is cut into non-overlapping windows of `num_frames` frames taken every
`frame_stride` frames (at most `max_clips_per_video` windows from its start); each window is one training
clip. Every frame is cropped to a centered square and resized like the image folders' files. A fixed
fraction of the sources (`val_fraction`, chosen by `split_seed`) is held out, so no video is in both splits.

Broken files, as for image folders: before the first step every source is checked (its frames counted,
its first window decoded; every frame of a frame folder checked); missing, empty, corrupt, non-video and
too-short sources are left out and named in one warning; a split left with no clip is a start-up error.
A clip that fails later is logged once and the next clip is served in its place.
"""

import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from datamodules.cache import map_in_threads, to_unit_range
from datamodules.image.decode import CropResize, is_image_name
from datamodules.image.base import ImageDataModule
from datamodules.image.files import NAMED_IN_WARNING, cpu_threads
from datamodules.video.decode import VIDEO_EXTENSIONS, check_clip, is_video_name, needs_pyav, pyav_available, read_clip
from sagan.errors import UsageError


def list_clip_sources(root: Path) -> list[Path]:
    """Video files and frame folders (folders holding image files) under `root`, recursively, sorted."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(Path(folder) / name for name in files if is_video_name(Path(name)))
        if Path(folder) != root and any(is_image_name(Path(name)) for name in files):
            found.append(Path(folder))
    return sorted(found)


class VideoClips(Dataset):
    """Windows of clip sources decoded on every access, as `(float clip [T, C, size, size] in [-1, 1], label)`.

    Args:
        windows: (source, first frame) of each clip.
        labels: one class index per clip.
        num_frames: frames per clip.
        stride: frames between two frames of a clip.
        transform: crop and resize of every frame.
        channels: 3 (RGB) or 1 (gray).
    """

    def __init__(self, windows: list[tuple[Path, int]], labels: list[int], num_frames: int, stride: int,
                 transform: CropResize, channels: int):
        self.windows, self.labels = windows, torch.as_tensor(labels, dtype=torch.long)
        self.num_frames, self.stride, self.transform, self.channels = num_frames, stride, transform, channels
        self.failed: set[Path] = set()

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        for offset in range(len(self.windows)):
            i = (index + offset) % len(self.windows)
            source, start = self.windows[i]
            try:
                clip = read_clip(source, start, self.num_frames, self.stride, self.transform, self.channels)
            except Exception as error:  # broken after the start-up check: serve the next clip
                if source not in self.failed:
                    self.failed.add(source)
                    warnings.warn(f"skipping unreadable clip {source}: {error}", stacklevel=2)
                continue
            return to_unit_range(clip), self.labels[i]
        raise RuntimeError(f"none of the {len(self.windows)} clips can be read any more")


class VideoFolderDataModule(ImageDataModule):
    """A folder of short videos (clip files and/or frame folders), flat or with class subfolders.

    Args:
        root: the video folder.
        batch_size: clips per batch and per device.
        image_size: frame height and width after cropping and resizing.
        num_frames: frames per clip.
        frame_stride: take every `frame_stride`-th frame of a video (2 halves the frame rate).
        channels: 3 (RGB) or 1 (gray).
        use_labels: class-conditional, one class per first-level subfolder (sorted by name); every clip
            source must then lie in a class subfolder.
        crop: side of the centered square cut from each frame before resizing; None: the largest square.
        resample: resampling filter of the resize.
        max_clips_per_video: windows taken from each source at most (None: all that fit).
        val_fraction: fraction of the sources held out for validation (at least one).
        split_seed: seed of the held-out choice.
        num_workers: DataLoader worker processes.
        check_files: check every source at start-up (frame count, first window) to find broken ones.
    """

    metric_features = "sagan.evaluation.video_features.I3DFeatures"  # FVD; needs its weights on disk
    name = "videos"

    def __init__(
        self,
        root: str = "data/videos",
        batch_size: int = 16,
        image_size: int = 64,
        num_frames: int = 16,
        frame_stride: int = 1,
        channels: int = 3,
        use_labels: bool = False,
        crop: int | None = None,
        resample: Literal["bilinear", "bicubic", "lanczos"] = "bicubic",
        max_clips_per_video: int | None = None,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        num_workers: int = 4,
        check_files: bool = True,
    ):
        super().__init__(batch_size, image_size, channels, use_labels, num_workers)
        if num_frames < 1 or frame_stride < 1 or (max_clips_per_video is not None and max_clips_per_video < 1):
            raise ValueError(
                f"num_frames, frame_stride and max_clips_per_video must be >= 1, got {num_frames}, {frame_stride} "
                f"and {max_clips_per_video}"
            )
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.root = Path(root).expanduser()
        self.num_frames, self.frame_stride, self.max_clips_per_video = num_frames, frame_stride, max_clips_per_video
        self.transform = CropResize(image_size, crop, resample)
        self.val_fraction, self.split_seed, self.check_files = val_fraction, split_seed, check_files
        if not self.root.is_dir():
            raise UsageError(f"video folder not found: {self.root} (give it with DATA_DIR=... or --data.init_args.root)")
        self.sources = list_clip_sources(self.root)
        if len(self.sources) < 2:
            raise UsageError(
                f"{len(self.sources)} clip sources under {self.root}: need at least 2 video files "
                f"({', '.join(VIDEO_EXTENSIONS)}) or folders of frame images"
            )
        pyav = [path for path in self.sources if not path.is_dir() and needs_pyav(path)]
        if pyav and not pyav_available():
            raise UsageError(f"{len(pyav)} video files under {self.root} (e.g. {pyav[0].name}) need PyAV: pip install av")
        top = [path for path in self.sources if path.parent == self.root]
        self.classes = [] if top else sorted({path.relative_to(self.root).parts[0] for path in self.sources})
        if use_labels and not self.classes:
            raise UsageError(f"use_labels=true needs one subfolder per class with every clip inside: {top[0]} is not")
        self.dataset_classes = len(self.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.labels = [index[p.relative_to(self.root).parts[0]] if self.classes else 0 for p in self.sources]
        order = torch.randperm(len(self.sources), generator=torch.Generator().manual_seed(split_seed)).tolist()
        held = max(1, round(val_fraction * len(self.sources)))
        self._split_indices = {"train": sorted(order[held:]), "valid": sorted(order[:held])}

    @property
    def fingerprint(self) -> str:
        held = f"train(val_fraction={self.val_fraction:g},seed={self.split_seed})"
        size, frames = self.image_size, f"{self.num_frames}x{self.frame_stride}"
        windows = f"max{self.max_clips_per_video}" if self.max_clips_per_video else "all"
        return (f"videofolder({self.root.resolve()}):{held}:{self.transform.describe()}:{frames}:{windows}:"
                f"{size}x{size}:{self.channels}ch")

    def _name_of(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def _load_split(self, split: str) -> tuple[VideoClips, list[tuple[str, str]], int]:
        """The split's clips, its skipped sources as (name, reason), and its number of sources."""
        sources = [self.sources[i] for i in self._split_indices[split]]
        labels = [self.labels[i] for i in self._split_indices[split]]
        span, needed = self.num_frames * self.frame_stride, (self.num_frames - 1) * self.frame_stride + 1
        if self.check_files:
            checked = list(map_in_threads(lambda s: check_clip(s, needed, self.transform, self.channels), sources,
                                          cpu_threads()))
        else:
            checked = [(needed, None)] * len(sources)  # one window each, unchecked
        windows, window_labels, skipped = [], [], []
        for source, label, (frames, reason) in zip(sources, labels, checked):
            if reason is not None:
                skipped.append((self._name_of(source), reason))
                continue
            count = (frames - needed) // span + 1  # windows start every `span` frames
            count = count if self.max_clips_per_video is None else min(count, self.max_clips_per_video)
            windows += [(source, k * span) for k in range(count)]
            window_labels += [label] * count
        clips = VideoClips(windows, window_labels, self.num_frames, self.frame_stride, self.transform, self.channels)
        return clips, skipped, len(sources)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        (train, train_skipped, train_total), (val, val_skipped, val_total) = map(self._load_split, ("train", "valid"))
        skipped = sorted(train_skipped + val_skipped)
        if skipped:
            named = ", ".join(f"{name} ({reason})" for name, reason in skipped[:NAMED_IN_WARNING])
            more = f" and {len(skipped) - NAMED_IN_WARNING} more" if len(skipped) > NAMED_IN_WARNING else ""
            rank_zero_warn(
                f"{self.name}: skipped {len(skipped)} of {train_total + val_total} clip sources that cannot be read: "
                f"{named}{more}"
            )
        for split, clips, total in (("train", train, train_total), ("valid", val, val_total)):
            if len(clips) == 0:
                raise UsageError(f"{self.name}: no readable clips in the {split} split ({total} sources under {self.root})")
        if len(train) < self.batch_size:
            raise UsageError(f"{self.name}: the train split has {len(train)} clips, fewer than batch_size={self.batch_size}")
        self.train_set, self.val_set = train, val
