"""Shared plumbing of audio data modules: loaders, and the facts that networks are built from.

A subclass provides `train_set` and `val_set` in `setup` (datasets of `(waveform, label)` with waveforms
as float tensors `[1, num_samples]` in [-1, 1] at `sample_rate`) and sets `dataset_classes`.
`sample_rate`, `num_samples` and `num_classes` are linked into the networks by the CLI; `fingerprint`
describes the training clips for caches of statistics computed from them (`sagan.evaluation.metrics`).
"""

import math
from abc import ABC, abstractmethod

import lightning as L
import numpy as np
import torch
from scipy.signal import resample_poly
from torch.utils.data import DataLoader, Dataset

from datamodules.resumable import rank_loader

MAX_SAMPLES = 1 << 18  # about 16 s at 16 kHz: clips, not recordings


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Float samples (last axis: time) from `rate` to `target` Hz (polyphase, scipy's Kaiser low-pass)."""
    if rate == target:
        return x
    g = math.gcd(rate, target)
    return resample_poly(x, target // g, rate // g, axis=-1)


def fit_length(x: np.ndarray, num_samples: int, offset: int = 0) -> np.ndarray:
    """A clip placed in `num_samples` of silence at `offset`, or its centered `num_samples` when longer."""
    if len(x) >= num_samples:
        start = (len(x) - num_samples) // 2
        return x[start : start + num_samples]
    out = np.zeros(num_samples, dtype=x.dtype)
    offset = min(max(offset, 0), num_samples - len(x))
    out[offset : offset + len(x)] = x
    return out


class AudioDataModule(L.LightningDataModule, ABC):
    """Base class of audio data modules.

    Args:
        batch_size: clips per batch and per device.
        sample_rate: samples per second of the waveforms the networks see.
        num_samples: length of every clip the networks see, in samples.
        use_labels: expose class labels, making the models class-conditional.
        num_workers: DataLoader worker processes.
    """

    dataset_classes: int = 0
    # Feature extractor of the sample-quality metrics (import path; `sagan.evaluation.metrics.SampleQuality`).
    metric_features: str | None = None

    def __init__(
        self, batch_size: int = 64, sample_rate: int = 8000, num_samples: int = 8192, use_labels: bool = True,
        num_workers: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 1000 <= sample_rate <= 192_000:
            raise ValueError(f"sample_rate must be in [1000, 192000] Hz, got {sample_rate}")
        if not 256 <= num_samples <= MAX_SAMPLES:
            raise ValueError(f"num_samples must be in [256, {MAX_SAMPLES}], got {num_samples}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = batch_size
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.use_labels = use_labels
        self.num_workers = num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """Classes the models are conditioned on: 0 when labels are off or the data has none."""
        return self.dataset_classes if self.use_labels else 0

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """The training clips in one line, for caches of statistics computed from them."""

    def train_dataloader(self) -> DataLoader:
        return rank_loader(self.trainer, self.train_set, self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return rank_loader(self.trainer, self.val_set, self.batch_size, False, self.num_workers)


def as_batch(clips: list[np.ndarray]) -> torch.Tensor:
    """Equal-length float clips -> `[N, 1, L]` float32 in [-1, 1]."""
    return torch.from_numpy(np.stack(clips).astype(np.float32)).clamp_(-1, 1).unsqueeze(1)
