"""The embedded speech data set: the spoken digits "zero" to "nine", synthesized with eSpeak NG, at 8 kHz.

2,000 clips (200 speakers, each saying every digit once: 8 English accents x 94 voice variants, each word
at its own speed and pitch) ship inside the package as 8-bit mu-law codes in an LZMA-compressed `.npz`
(4.9 MB, `datamodules/embedded/spoken_digits_8k.npz`), so nothing is downloaded and eSpeak is not needed;
`scripts/make_spoken_digits.py` rebuilds the file. The validation split is fixed by voice: the speakers of
the 19 held-out variants (15 of them drawn; 330 clips) are never heard in training.

Each clip (0.15-0.9 s of speech) is placed in `num_samples` of silence (default 8,192: 1.02 s, like
WaveGAN's 16,384 samples at 16 kHz) at a fixed offset: random but seeded (`placement_seed`), the start, or
the middle.
"""

import hashlib
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from datamodules.audio.base import MAX_SAMPLES, AudioDataModule

PACKED = Path(__file__).resolve().parents[1] / "embedded" / "spoken_digits_8k.npz"  # datamodules/embedded/
SAMPLE_RATE = 8000
LONGEST = 7200  # samples: no clip of the packed set is longer (0.9 s)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
Placement = Literal["random", "start", "center"]


@cache
def load_packed(path: Path = PACKED) -> dict[str, np.ndarray]:
    """The packed file's arrays (read once per process)."""
    with np.load(path, allow_pickle=False) as packed:
        return {name: packed[name] for name in packed.files}


@cache
def packed_digest(path: Path = PACKED) -> str:
    """First 16 hex digits of the packed file's sha256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@cache
def decoded_samples() -> np.ndarray:
    """All clips' samples, decoded once per process (float32, one after the other as in `codes`)."""
    return mu_law_decode(load_packed()["codes"])


def mu_law_decode(codes: np.ndarray, mu: int = 255) -> np.ndarray:
    """8-bit mu-law codes -> float32 samples in [-1, 1]."""
    y = codes.astype(np.float64) / mu * 2 - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def spoken_digits(
    split: Literal["train", "val"], num_samples: int = 8192, placement: Placement = "random", placement_seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's clips as `[N, 1, num_samples]` floats in [-1, 1] and `[N]` digit labels.

    Clip i's offset depends only on (placement, placement_seed, i, num_samples), never on the split.
    """
    packed = load_packed()
    starts, labels = packed["starts"], packed["labels"]
    lengths = np.diff(starts)
    fractions = np.random.default_rng(placement_seed).random(len(lengths))  # one per clip of the whole file
    room = num_samples - lengths
    offsets = {"random": np.floor(fractions * (room + 1)), "start": np.zeros_like(room), "center": room // 2}[placement]
    chosen = np.flatnonzero(packed["val"] == (split == "val"))
    samples = decoded_samples()
    waves = np.zeros((len(chosen), 1, num_samples), dtype=np.float32)
    for row, i in enumerate(chosen):
        offset = int(offsets[i])
        waves[row, 0, offset : offset + lengths[i]] = samples[starts[i] : starts[i + 1]]
    return torch.from_numpy(waves), torch.as_tensor(labels[chosen], dtype=torch.long)


class SpokenDigitsDataModule(AudioDataModule):
    """Spoken digits 0-9 (10 classes) synthesized with eSpeak NG, 8 kHz, embedded; no download.

    Args:
        batch_size: clips per batch and per device.
        num_samples: samples per clip (at 8 kHz); every spoken word fits in 7,200.
        use_labels: expose the digit labels, making the models class-conditional.
        placement: where each word sits in its clip: "random" (a fixed offset per clip, drawn with
            `placement_seed`), "start" or "center".
        placement_seed: seed of the random offsets; keep it fixed to compare runs.
        num_workers: DataLoader worker processes (the data sits in memory: 0 is fastest).
    """

    dataset_classes = 10
    metric_features = "sagan.evaluation.speech_features.SpokenDigitsFeatures"  # spoken-digit IS / FD

    def __init__(
        self,
        batch_size: int = 64,
        num_samples: int = 8192,
        use_labels: bool = True,
        placement: Placement = "random",
        placement_seed: int = 0,
        num_workers: int = 0,
    ):
        if not LONGEST <= num_samples <= MAX_SAMPLES:
            raise ValueError(f"num_samples must be in [{LONGEST}, {MAX_SAMPLES}] (the longest word lasts {LONGEST}), got {num_samples}")
        if placement not in ("random", "start", "center"):
            raise ValueError(f"placement must be 'random', 'start' or 'center', got {placement!r}")
        super().__init__(batch_size, SAMPLE_RATE, num_samples, use_labels, num_workers)
        self.placement = placement
        self.placement_seed = placement_seed

    @property
    def fingerprint(self) -> str:
        where = self.placement + (f"(seed={self.placement_seed})" if self.placement == "random" else "")
        return f"spoken-digits-8k({packed_digest()}):train:num_samples={self.num_samples}:placement={where}"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        args = (self.num_samples, self.placement, self.placement_seed)
        self.train_set = TensorDataset(*spoken_digits("train", *args))
        self.val_set = TensorDataset(*spoken_digits("val", *args))
