"""Text data as fixed-length token sequences: the base of every text data module.

A text data module provides `train_set`, `val_set` and `test_set` (datasets of `(tokens,)` with tokens a
LongTensor `[seq_len]`) and the facts the CLI links into the model: `vocab_size` and `seq_len` (both
networks) and `vocabulary` (the TextGAN module, which decodes samples with it and refuses to resume a
checkpoint trained on another vocabulary). It may also provide `oracle`, a model with
`nll(tokens) -> [N]`, which turns on the NLL-oracle metric. During `fit` the vocabulary is saved as
`vocab.json` in the run directory.

Loaders are those of the image data modules (datamodules/resumable.py): each rank reads its own share,
and the training order is a seeded stream whose position is saved in checkpoints (exact resume).
"""

from abc import ABC, abstractmethod
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, TensorDataset

from datamodules.resumable import rank_loader
from sagan.errors import UsageError, check_ranges
from sagan.vocabulary import Vocabulary, check_vocabulary


class TokenDataModule(L.LightningDataModule, ABC):
    """Base class of text data modules: loaders, the linked facts, and the vocabulary saved with the run.

    Subclasses implement `vocabulary`, `seq_len` and `_splits()`.

    Args:
        batch_size: sequences per batch and per device.
        num_workers: DataLoader worker processes (the data sits in memory: 0 is fastest).
    """

    #: A model of the data with `nll(tokens) -> [N]` (the synthetic benchmark's oracle), or None.
    oracle = None

    def __init__(self, batch_size: int = 64, num_workers: int = 0):
        super().__init__()
        check_ranges(type(self).__name__, batch_size=(batch_size, "[1, inf)"), num_workers=(num_workers, "[0, inf)"))
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    @property
    @abstractmethod
    def vocabulary(self) -> Vocabulary:
        """The tokens the networks see."""

    @property
    @abstractmethod
    def seq_len(self) -> int:
        """Length of every sequence the networks see."""

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @abstractmethod
    def _splits(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids of the train, validation and test sentences, each `[N, seq_len]`."""

    def prepare_data(self) -> None:
        """Saves the vocabulary in the run directory; a resumed run must find the same one there."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return
        path = Path(trainer.default_root_dir) / "vocab.json"
        if path.exists():
            check_vocabulary(Vocabulary.load(path), self.vocabulary, f"the run's {path}")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.vocabulary.save(path)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, valid, test = self._splits()
        processes = self.trainer.world_size if self.trainer else 1
        if len(train) // processes < self.batch_size:
            each = f" per process ({processes} processes)" if processes > 1 else ""
            raise UsageError(
                f"{type(self).__name__}: {len(train) // processes} training sentences{each}, fewer than one batch "
                f"(batch_size={self.batch_size}); lower --data.init_args.batch_size"
            )
        self.train_set, self.val_set, self.test_set = TensorDataset(train), TensorDataset(valid), TensorDataset(test)

    def _loader(self, dataset: TensorDataset, train: bool) -> DataLoader:
        # Each rank reads its own share; training batches are whole (RSGAN pairs each real sequence with one
        # generated sequence) and come in the resumable order of the run's seed (datamodules/resumable.py).
        return rank_loader(self.trainer, dataset, self.batch_size, train, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
