"""Callbacks that tests add to real `sagan fit` runs (`--trainer.callbacks+=probes.<Name>`) to watch or
disturb them: tests/ is on sys.path under pytest, and on PYTHONPATH for subprocess runs."""

import json
import os
import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

class Recorder(L.Callback):
    """Appends, for every training batch, a draw from each global generator (python, numpy, torch) and a
    fingerprint of the batch to a JSON-lines file: two runs fed the same data and noise write the same lines.

    Args:
        out: the file to append to.
    """

    def __init__(self, out: str):
        self.out = out

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        images, labels = batch
        record = {
            "step": trainer.global_step, "python": random.random(), "numpy": float(np.random.rand()),
            "torch": torch.rand(1).item(), "images": images.double().sum().item(), "labels": labels.tolist(),
        }
        with open(self.out, "a") as f:
            f.write(json.dumps(record) + "\n")

def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]

class SendSignal(L.Callback):
    """Sends `signum` to this process at the start of the training batch after `after_batches` batches.

    Args:
        signum: the signal number.
        after_batches: training batches of this run to let pass first.
    """

    def __init__(self, signum: int, after_batches: int):
        self.signum = signum
        self.after_batches = after_batches
        self.seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.seen == self.after_batches:
            os.kill(os.getpid(), self.signum)
        self.seen += 1

class PoisonBatches(L.Callback):
    """Puts a NaN into one image of each training batch whose overall index (in this run) is listed.

    Args:
        batches: indices of the batches to poison; empty: all of them.
    """

    def __init__(self, batches: list[int] = []):  # noqa: B006 (a CLI argument, never mutated)
        self.batches = set(batches)
        self.seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.batches or self.seen in self.batches:
            batch[0][0, 0, 0, 0] = float("nan")
        self.seen += 1

class RankProbe(L.Callback):
    """Writes `<out>/rank<r>.pt` at the end of training: this rank's module state, optimizer states, the
    images it trained on and the noise it drew.

    Args:
        out: folder for the files.
    """

    def __init__(self, out: str):
        self.out = out

    def on_train_start(self, trainer, pl_module):
        self.images, self.noise = [], []
        draw = pl_module.sample_noise

        def recording(n):
            z, y = draw(n)
            self.noise.append(z.detach().cpu().clone())
            return z, y

        pl_module.sample_noise = recording

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.images.append(batch[0].detach().cpu().clone())

    def on_train_end(self, trainer, pl_module):
        torch.save(
            {
                "params": {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()},
                "ema": {k: v.detach().cpu().clone() for k, v in pl_module.generator_ema.named_parameters()},
                "optimizers": [opt.state_dict() for opt in trainer.optimizers],
                "images": self.images, "noise": self.noise, "world_size": trainer.world_size,
                "wrapped": sorted(pl_module.data_parallel),
            },
            Path(self.out) / f"rank{trainer.global_rank}.pt",
        )
