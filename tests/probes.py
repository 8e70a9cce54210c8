"""Callbacks that tests add to real `sagan fit` runs (`--trainer.callbacks+=probes.<Name>`) to watch or
disturb them: tests/ is on sys.path under pytest, and on PYTHONPATH for subprocess runs."""

import contextlib
import subprocess
import sys
import json
import os
import random
import time
from pathlib import Path
from unittest import mock

import lightning as L
import numpy as np
import torch
from torch.testing import assert_close

from sagan.evaluation.speech_features import SpokenDigitsCNN, SpokenDigitsFeatures


class Recorder(L.Callback):
    """Appends, for every training batch, a draw from each global generator (python, numpy, torch) and a
    fingerprint of the batch to a JSON-lines file: two runs fed the same data and noise write the same lines.

    Args:
        out: the file to append to.
    """

    def __init__(self, out: str):
        self.out = out

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # images by their sum, labels and token ids in full
        data = [t.double().sum().item() if t.is_floating_point() else t.tolist() for t in batch]
        record = {
            "step": trainer.global_step, "python": random.random(), "numpy": float(np.random.rand()),
            "torch": torch.rand(1).item(), "batch": data,
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

class PoisonOutputs(L.Callback):
    """Makes the output of the module's network `network` NaN (a forward hook) during each training batch
    whose overall index (in this run) is listed: a NaN that flows through the loss and the backward pass.

    Args:
        network: attribute name of the network ("generator" or "discriminator").
        batches: indices of the batches to poison; empty: all of them.
    """

    def __init__(self, network: str = "discriminator", batches: list[int] = []):  # noqa: B006
        self.network = network
        self.batches = set(batches)
        self.seen = 0
        self.hook = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.batches or self.seen in self.batches:
            net = getattr(pl_module, self.network)
            self.hook = net.register_forward_hook(lambda module, args, out: out + float("nan"))
        self.seen += 1

    def on_train_batch_end(self, trainer, pl_module, *args):
        if self.hook is not None:
            self.hook.remove()
            self.hook = None

@contextlib.contextmanager
def no_host_reads():
    """Every way Python code reads a tensor's value on the host raises inside the block."""

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronization inside the training step")

    names = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(torch.Tensor, name, forbidden))
        yield

class GuardTrainingStep(L.Callback):
    """Runs the module's `training_step` inside `no_host_reads`."""

    def on_train_start(self, trainer, pl_module):
        step = pl_module.training_step

        def guarded(*args, **kwargs):
            with no_host_reads():
                return step(*args, **kwargs)

        pl_module.training_step = guarded

class RankProbe(L.Callback):
    """Writes `<out>/rank<r>.pt` at the end of training: this rank's module state, optimizer states, the
    batches it trained on (images or token ids) and the noise it drew (the image GAN's `sample_noise`; for the text GAN, the
    tokens of the generator's samples, drawn from its Gumbel noise).

    Args:
        out: folder for the files.
    """

    def __init__(self, out: str):
        self.out = out

    def on_train_start(self, trainer, pl_module):
        self.batches, self.noise, self.stepping = [], [], False
        image = hasattr(pl_module, "sample_noise")
        owner, name = (pl_module, "sample_noise") if image else (pl_module.generator, "sample")
        if not hasattr(owner, name):  # a module that draws no noise (the repair GAN)
            return
        draw, step = getattr(owner, name), pl_module.training_step

        def recording(*args, **kwargs):  # draws of training steps only, not those of samples or validation
            out = draw(*args, **kwargs)
            if self.stepping:
                self.noise.append(out[0].detach().cpu().clone())
            return out

        def stepping(*args, **kwargs):
            self.stepping = True
            try:
                return step(*args, **kwargs)
            finally:
                self.stepping = False

        setattr(owner, name, recording)
        pl_module.training_step = stepping

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch[0].detach().cpu().clone())

    def on_train_end(self, trainer, pl_module):
        ema = getattr(pl_module, "generator_ema", None)
        torch.save(
            {
                "params": {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()},
                "ema": {} if ema is None else {k: v.detach().cpu().clone() for k, v in ema.named_parameters()},
                "optimizers": [opt.state_dict() for opt in trainer.optimizers],
                "batches": self.batches, "noise": self.noise, "world_size": trainer.world_size,
                "wrapped": sorted(pl_module.data_parallel),
            },
            Path(self.out) / f"rank{trainer.global_rank}.pt",
        )


class DieOnRank(L.Callback):
    """Ends process `rank` abruptly (no cleanup, like a crash or an OOM kill) at the start of training batch
    `batch`, to see what the other processes of a distributed run do; writes the time it died to `out`.

    Args:
        out: file that gets the time of death (`time.time()`).
        rank: the global rank that dies.
        batch: the training batch at whose start it dies.
    """

    def __init__(self, out: str, rank: int = 1, batch: int = 1):
        self.out, self.rank, self.batch = out, rank, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.rank and batch_idx == self.batch:
            Path(self.out).write_text(repr(time.time()))
            os._exit(1)


# ---------------------------------------------------------------- helpers of the resume and DDP tests
# what the resume tests run with: 2 D steps per G step, 3 batches an epoch, deterministic kernels, and G's
# average exponential for 2 iterations, then uniform (a stop at 2 resumes into the uniform part)
SHAPE = [
    "--model.n_critic=2", "--trainer.limit_train_batches=3", "--trainer.deterministic=true",
    "--model.ema_start=0", "--model.ema_uniform_start=2",
]


def recorded(tmp: Path) -> list[str]:
    return ["--trainer.callbacks+=probes.Recorder", f"--trainer.callbacks.out={tmp / 'records.jsonl'}"]


def assert_same_training_state(a: Path, b: Path) -> None:
    first = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)
    second = torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == second["global_step"] == 12
    assert_close(second["state_dict"], first["state_dict"], rtol=0, atol=0)  # G, D, EMA, spectral-norm vectors
    assert_close(
        [opt["state"] for opt in second["optimizer_states"]], [opt["state"] for opt in first["optimizer_states"]],
        rtol=0, atol=0,
    )


def fit_two_processes(tmp_path: Path, *args: str) -> tuple[dict, dict]:
    """`sagan fit *args` on 2 CPU processes (gloo) with a RankProbe; what each rank saw and ended with."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable, "-m", "sagan", "fit", *args, "--tracker=none",
        "--run_root", str(tmp_path / "runs"), "--trainer.devices=2", "--trainer.accelerator=cpu",
        "--trainer.callbacks+=probes.RankProbe", f"--trainer.callbacks.out={tmp_path}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return tuple(torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))


class UntrainedSpokenDigits(SpokenDigitsFeatures):
    """The extractor with a seeded, untrained network: the metric's arithmetic without a minute of training
    (used by the speech tests as `--metrics.features=probes.UntrainedSpokenDigits`)."""

    @property
    def fingerprint(self) -> str:
        return f"untrained-spoken-digits:{self.sample_rate}"

    def load(self) -> "UntrainedSpokenDigits":
        if self.net is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.net = SpokenDigitsCNN(self.sample_rate).eval()
        return self
