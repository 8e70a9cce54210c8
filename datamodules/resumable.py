"""A training data order that survives a restart, and sharding over ranks.

The order is one endless stream: the permutation of data epoch 0 (drawn from `seed`), then that of
epoch 1 (`seed + 1`), and so on, each cut into rank shards. `ResumableDataLoader` remembers its position
in the stream (batches handed out since training began); every new pass starts there and runs to the
end of the data epoch it is in. Lightning saves the position in checkpoints (the loader has
`state_dict`/`load_state_dict`) and gives it back on resume. Because the order depends on the position
alone, and not on Lightning's epoch counter, a resumed run sees the batches the uninterrupted run would
have seen: after a stop mid-epoch, after a `--g_iters` budget ran out (Lightning counts that epoch as
finished) and with `limit_train_batches` (an epoch of the trainer then reads the next batches of the
stream rather than the first ones of a new permutation).

A data set with `keyed_by_epoch = True` is indexed with `(data epoch, index)` pairs instead of indices,
so that what its items draw at random (the masks and damage of `datamodules/repair/damaged.py`) is a function of
the position in the stream too, and a resumed run draws what the uninterrupted run drew.

`ResumableSampler` is a `DistributedSampler`, so Lightning keeps it under DDP instead of replacing it.
The loader draws its worker seeds from its own generator, never from the global one that the training
noise comes from. `rank_loader` is what the image and text data modules hand Lightning.
"""

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """One rank's share of a seeded order, started where its loader says (`start_at`).

    Args:
        dataset: the data set (only its length is used).
        num_replicas: number of ranks sharing the data.
        rank: this rank.
        seed: seed of the orders (data epoch `e` uses `seed + e`); the same on every rank.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def start_at(self, epoch: int, skip: int) -> None:
        """The next pass goes through data epoch `epoch` from its `skip`-th index on."""
        super().set_epoch(epoch)
        self.skip = skip

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the loader's position decides the data epoch, not the trainer's count of epochs."""

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip :]
        if getattr(self.dataset, "keyed_by_epoch", False):  # its items draw random damage keyed by (epoch, index)
            return iter([(self.epoch, index) for index in indices])
        return iter(indices)


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` (with `drop_last=True`) whose position in the stream is part
    of the checkpoint. Takes DataLoader's arguments; its length is that of a whole data epoch. With another
    sampler (Lightning swaps in a sequential one for `overfit_batches`) it is an ordinary DataLoader.
    """

    def __init__(self, dataset: Dataset, *args: Any, **kwargs: Any):
        super().__init__(dataset, *args, **kwargs)
        self.position = 0  # batches handed out since training began

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self.sampler, ResumableSampler):
            epoch, batch = divmod(self.position, len(self))
            self.sampler.start_at(epoch, batch * self.batch_size)
        return self._count(super().__iter__())

    def _count(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = state["position"]


def training_loader(
    dataset: Dataset, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, **kwargs: Any
) -> ResumableDataLoader:
    """Shuffled whole batches of one rank's share, resumable (see the module's docstring)."""
    return ResumableDataLoader(
        dataset, batch_size=batch_size, sampler=ResumableSampler(dataset, num_replicas, rank, seed), drop_last=True,
        generator=torch.Generator().manual_seed(seed + rank), **kwargs,
    )


def evaluation_loader(
    dataset: Dataset, batch_size: int, num_replicas: int = 1, rank: int = 0, **kwargs: Any
) -> DataLoader:
    """One rank's share in the data set's order (the last rank's share is padded to equal length)."""
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)


def rank_loader(trainer: Any, dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0) -> DataLoader:
    """A data module's loader: this rank's share (the trainer's, when the module is attached to one).
    Training batches are whole and come in the resumable order seeded by the run's seed (Lightning's
    PL_GLOBAL_SEED); evaluation batches in the data set's order."""
    shard = dict(num_replicas=trainer.world_size, rank=trainer.global_rank) if trainer else {}
    options = dict(num_workers=num_workers, pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0)
    if train:
        return training_loader(dataset, batch_size, seed=int(os.environ.get("PL_GLOBAL_SEED", 0)), **shard, **options)
    return evaluation_loader(dataset, batch_size, **shard, **options)
