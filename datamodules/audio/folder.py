"""Any folder of short audio clips, with labels from subfolders: real speech such as SC09.

    <root>/a.wav, <root>/more/b.flac, ...                    flat: unconditional
    <root>/<class>/x.wav, <root>/<class>/sub/y.flac, ...     class subfolders: labels with use_labels=true

Files ending in .wav or .flac (any case) are read with soundfile, searched recursively (hidden folders
skipped). `classes` picks some first-level subfolders (in that order) and ignores the rest: Speech
Commands holds 35 words, and `classes: [zero, one, ..., nine]` is its SC09 subset. Every clip is mixed to
mono, resampled to `sample_rate` (polyphase, scipy), then cut to its centered `num_samples` or padded
with silence at the end (SC09's one-second clips become 16,384 samples at 16 kHz, as in WaveGAN).

Broken files behave as in the image folders: before the first step every file is decoded once; missing,
empty and unreadable files are left out and named in one warning, and a file that breaks later is
logged and the next clip served in its place.
"""

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from datamodules.audio.base import AudioDataModule, fit_length, resample
from datamodules.cache import map_in_threads
from datamodules.image.files import NAMED_IN_WARNING, cpu_threads
from sagan.errors import UsageError

AUDIO_EXTENSIONS = (".wav", ".flac")


def list_audio(root: Path) -> list[Path]:
    """Audio files under `root`, recursively, in sorted order, skipping hidden folders."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(Path(folder) / name for name in files if Path(name).suffix.lower() in AUDIO_EXTENSIONS)
    return sorted(found)


def load_clip(path: Path, sample_rate: int, num_samples: int) -> np.ndarray:
    """A file as float32 mono samples at `sample_rate`, `num_samples` long, in [-1, 1]."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # [frames, channels]
    if data.shape[0] == 0:
        raise ValueError("no samples")
    mono = resample(data.mean(axis=1), rate, sample_rate)
    return np.clip(fit_length(mono, num_samples), -1.0, 1.0).astype(np.float32)


def check_clip(path: Path) -> str | None:
    """None if the file decodes, else why not (a short reason for the warning)."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        load_clip(path, 8000, 256)
    except FileNotFoundError:
        return "missing"
    except Exception as error:  # soundfile's LibsndfileError ("Error opening '<path>': <why>"), or no samples
        why = str(error).splitlines()[0].rpartition("': ")[2].strip(" .") if str(error) else type(error).__name__
        return f"not readable audio: {why[:60]}"
    return None


class AudioFiles(Dataset):
    """Audio files decoded on every access, as `(float waveform [1, num_samples] in [-1, 1], label)`.

    Args:
        paths: the files.
        labels: one class index per file; None: every label is 0.
        sample_rate: rate to resample to.
        num_samples: length of every clip.
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | None, sample_rate: int, num_samples: int):
        self.paths = list(paths)
        self.labels = torch.zeros(len(self.paths), dtype=torch.long) if labels is None else torch.as_tensor(labels)
        self.sample_rate, self.num_samples = sample_rate, num_samples
        self.failed: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"clip {index} of {len(self.paths)}")  # also ends `for clip in dataset`
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            try:
                clip = load_clip(self.paths[i], self.sample_rate, self.num_samples)
            except Exception as error:  # a file broken after the start-up check: serve the next one
                if self.paths[i] not in self.failed:
                    self.failed.add(self.paths[i])
                    warnings.warn(f"skipping unreadable audio file {self.paths[i]}: {error}", stacklevel=2)
                continue
            return torch.from_numpy(clip)[None], self.labels[i]
        raise RuntimeError(f"none of the {len(self.paths)} audio files can be read any more")


class AudioFolderDataModule(AudioDataModule):
    """A folder of audio clips, flat or with class subfolders (SC09: Speech Commands' digit folders).

    Args:
        root: the audio folder.
        batch_size: clips per batch and per device.
        sample_rate: rate every file is resampled to.
        num_samples: samples per clip (centered cut or silence appended).
        use_labels: class-conditional, one class per first-level subfolder; every file must then lie in
            a class subfolder.
        classes: the first-level subfolders to read, in label order; None: all of them (sorted by name).
        val_fraction: fraction of the files held out for validation (at least one).
        split_seed: seed of the held-out choice; keep it fixed to compare runs.
        num_workers: DataLoader worker processes.
        check_files: decode every file once at start-up to find broken ones.
    """

    def __init__(
        self,
        root: str = "data/audio",
        batch_size: int = 64,
        sample_rate: int = 16000,
        num_samples: int = 16384,
        use_labels: bool = False,
        classes: list[str] | None = None,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        num_workers: int = 2,
        check_files: bool = True,
    ):
        super().__init__(batch_size, sample_rate, num_samples, use_labels, num_workers)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.root = Path(root).expanduser()
        self.val_fraction, self.split_seed, self.check_files = val_fraction, split_seed, check_files
        if not self.root.is_dir():
            raise UsageError(f"audio folder not found: {self.root} (give it with DATA_DIR=... or --data.init_args.root)")
        files = list_audio(self.root)
        top = [path for path in files if path.parent == self.root]
        found = sorted({path.relative_to(self.root).parts[0] for path in files if path.parent != self.root})
        if classes is not None:
            missing = [name for name in classes if name not in found]
            if missing or not classes:
                raise UsageError(f"classes {missing or classes} have no audio files under {self.root} (found: {found})")
            files = [path for path in files if path.parent != self.root and path.relative_to(self.root).parts[0] in classes]
        self.classes = list(classes) if classes is not None else ([] if top else found)
        if len(files) < 2:
            raise UsageError(f"{len(files)} audio files under {self.root}: need at least 2 files ending in "
                             f"{', '.join(AUDIO_EXTENSIONS)}")
        if use_labels and not self.classes:
            raise UsageError(f"use_labels=true needs one subfolder per class with every file inside: "
                             f"{len(top)} files lie directly in {self.root}, e.g. {top[0].name}")
        self.dataset_classes = len(self.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.files = files
        self.labels = [index[path.relative_to(self.root).parts[0]] for path in files] if self.classes else None
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed)).tolist()
        held = max(1, round(val_fraction * len(files)))
        self._split = {"train": sorted(order[held:]), "val": sorted(order[:held])}

    @property
    def fingerprint(self) -> str:
        chosen = f",classes={','.join(self.classes)}" if self.classes else ""
        split = f"train(val_fraction={self.val_fraction:g},seed={self.split_seed}{chosen})"
        return f"audio-folder({self.root.resolve()}):{split}:{self.sample_rate}Hz:{self.num_samples}"

    def _dataset(self, split: str) -> tuple[AudioFiles, list[tuple[Path, str]]]:
        paths = [self.files[i] for i in self._split[split]]
        labels = None if self.labels is None else [self.labels[i] for i in self._split[split]]
        reasons = list(map_in_threads(check_clip, paths, cpu_threads())) if self.check_files else [None] * len(paths)
        good = [i for i, reason in enumerate(reasons) if reason is None]
        bad = [(path, reason) for path, reason in zip(paths, reasons) if reason is not None]
        kept = None if labels is None else [labels[i] for i in good]
        return AudioFiles([paths[i] for i in good], kept, self.sample_rate, self.num_samples), bad

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        (train, bad_train), (val, bad_val) = self._dataset("train"), self._dataset("val")
        skipped = bad_train + bad_val
        if skipped:
            named = ", ".join(f"{path.relative_to(self.root)} ({reason})" for path, reason in skipped[:NAMED_IN_WARNING])
            more = f" and {len(skipped) - NAMED_IN_WARNING} more" if len(skipped) > NAMED_IN_WARNING else ""
            rank_zero_warn(f"audio folder: skipped {len(skipped)} of {len(self.files)} audio files that cannot be "
                           f"read: {named}{more}")
        for split, dataset in (("train", train), ("val", val)):
            if len(dataset) == 0:
                raise UsageError(f"audio folder: no readable audio files in the {split} split under {self.root}")
        if len(train) < self.batch_size:
            raise UsageError(f"audio folder: the train split has {len(train)} clips, fewer than batch_size={self.batch_size}")
        self.train_set, self.val_set = train, val
