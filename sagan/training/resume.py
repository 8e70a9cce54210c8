"""What lets a run survive interruption: atomic checkpoint files, random-generator states in checkpoints,
and a checkpoint on SIGTERM / SIGINT / SIGUSR1 before the process exits.

- `AtomicCheckpointIO` (the default CheckpointIO of `sagan fit`) writes a checkpoint to a temporary file
  in the same folder, flushes it to disk and renames it over the target: a crash or a kill mid-save
  leaves the previous file whole; a full disk or an unwritable folder ends the run in one line. It loads with `torch.load(weights_only=True)` unless told otherwise.
- `random_state` / `set_random_state`: torch (CPU and the current CUDA device), numpy and python
  generator states as tensors and plain containers, so checkpoints stay loadable with weights_only=True.
- `TrainingRandomState`: the LightningModule hooks (a mixin of both GAN modules) that put those states
  in checkpoints and take them back on resume, give every rank its own draws, and let validation draw
  fixed noise without moving the training streams.
- `SignalCheckpoint`: its handlers only note the signal; at the end of the training batch, when both
  networks, the average, the optimizers and the counters agree, it saves `last.ckpt`, requeues a SLURM
  job after SIGUSR1, and stops the run with exit status 128 + signal number.
"""

import os
import random
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sagan.errors import TrainingStopped, UsageError, os_error_of
from sagan.training.distributed import rank_seed

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint files written whole or not at all (temporary file, fsync, rename); weights-only loading."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: no rename there, use Lightning's writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX file systems: readers see the old file or the new one
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            os_error = os_error_of(error)  # a full disk surfaces from torch.save as "unexpected pos"
            if os_error is not None:
                kept = "the previous one is intact" if path.exists() else "no earlier checkpoint is affected"
                raise UsageError(
                    f"cannot write the checkpoint {path}: {os_error.strerror or os_error} ({kept}; free space or "
                    "fix the folder, then continue with --resume last)"
                ) from error
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def load_checkpoint(self, path, map_location: Any = "cpu", weights_only: bool | None = None) -> dict[str, Any]:
        # "cpu" like Lightning's default: every rank reads the file onto the CPU, not onto the saving GPU
        return super().load_checkpoint(path, map_location, weights_only=True if weights_only is None else weights_only)


# ------------------------------------------------------------------------------------- random state
def random_state(device: torch.device) -> dict[str, Any]:
    """States of the generators a training step can draw from: torch CPU, the CUDA device in use, numpy and
    python's `random`; only tensors and plain containers (weights-only loadable)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(state: dict[str, Any], device: torch.device) -> None:
    """Restores what `random_state` returned."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((
        "MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"], numpy_state["has_gauss"],
        numpy_state["cached_gaussian"],
    ))
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class TrainingRandomState:
    """Mixin of a LightningModule whose training draws noise from the global generators.

    Checkpoints carry rank 0's random state, so a resumed run draws the noise the uninterrupted run would
    have drawn. With several processes each rank then draws its own noise (Lightning seeds every rank
    alike), from a seed that depends on the rank and the step. Validation draws the same noise every
    time, and leaves the training streams where they were. The hooks call `super()`, so a module that
    overrides one calls `super()` too.
    """

    _restored_random_state: dict | None = None
    _training_random_state: dict | None = None

    def on_train_start(self) -> None:
        super().on_train_start()
        if self._restored_random_state is not None:
            set_random_state(self._restored_random_state, self.device)
            self._restored_random_state = None
        if self.trainer.world_size > 1 and self.global_rank > 0:
            torch.manual_seed(rank_seed(torch.initial_seed() + self.global_step, self.global_rank))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["random_state"] = random_state(self.device)  # rank 0's, the rank that writes

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._restored_random_state = checkpoint.get("random_state")

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._training_random_state = random_state(self.device)
        torch.manual_seed(rank_seed(0, self.global_rank))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        set_random_state(self._training_random_state, self.device)


# ------------------------------------------------------------------------------------ checkpoints
class RunCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint` whose `last.ckpt` is always the newest state of its folder.

    Lightning restores a checkpoint callback's state only when its settings are the same as when it saved
    (`every_n_train_steps`, ...). A run resumed with other settings would otherwise see the `last.ckpt`
    already there as someone else's file and write `last-v1.ckpt` beside it, and the next `--resume last`
    would continue from the older one. Here the `last.ckpt` in the checkpoint folder is taken as this
    run's own, and overwritten; and the state a run ends with is always saved as `last.ckpt`.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.save_last and self.dirpath and "://" not in str(self.dirpath):
            last = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
            if last.is_file():
                self.last_model_path = str(last)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """`last.ckpt` holds the state the run ended with, also when its budget is no multiple of
        `every_n_train_steps` (Lightning saves at the end only when no `last.ckpt` was written before)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            if self._last_global_step_saved != trainer.global_step:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
                return
        super().on_train_end(trainer, pl_module)


def save_last(trainer: L.Trainer) -> Path:
    """Saves the current state as the run's `last.ckpt` (called on every rank; rank 0 writes)."""
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        path = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        callback.last_model_path = str(path)
    else:
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


class SignalCheckpoint(L.Callback):
    """SIGTERM, SIGINT (Ctrl+C) and SIGUSR1 end training with a checkpoint instead of losing it.

    A handler only notes the signal. At the end of the training batch in progress, `last.ckpt` is written
    (atomically), a SLURM job is requeued after SIGUSR1, and the run stops with exit status 128 + the
    signal number. With several processes the ranks first agree whether any of them got a signal: one
    all-reduce of one integer per batch on a CPU (gloo) group, which does not wait for the GPU. A second
    Ctrl+C interrupts at once. A validation in progress finishes before the signal is acted upon.

    Args:
        requeue: after SIGUSR1 under SLURM (`SLURM_JOB_ID` set, e.g. `#SBATCH --signal=USR1@90`), run
            `scontrol requeue <job>` from rank 0 so that the job restarts (with `--resume auto`).
    """

    def __init__(self, requeue: bool = True):
        self.requeue = requeue
        self.received = 0
        self._previous: dict[int, Any] = {}
        self._group = None
        self._epoch_loop = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its own handlers just before training; ours replace them while training runs.
        self.received = 0
        if threading.current_thread() is not threading.main_thread():
            return  # handlers can only be installed from the main thread
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            self._group = dist.new_group(backend="gloo")
        for signum in SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._note)
        # Lightning (2.6) broadcasts a SIGTERM flag from rank 0 on the training device and reads it (.item())
        # before every batch under DDP: a GPU sync per batch. With its handler replaced by ours the flag is
        # always 0, and the agreement above does the job on the CPU, so that broadcast is skipped meanwhile.
        self._epoch_loop = trainer.fit_loop.epoch_loop
        if hasattr(self._epoch_loop, "_broadcast_sigterm_tensor"):
            self._epoch_loop._broadcast_sigterm_tensor = _nothing

    def _note(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, without a checkpoint
        self.received = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        signum = self.received
        if self._group is not None:
            flag = torch.tensor([signum], dtype=torch.int64)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
            signum = int(flag)
        if not signum:
            return
        path = save_last(trainer)
        name = signal.Signals(signum).name
        step = getattr(pl_module, "generator_steps", trainer.global_step)
        message = f"stopped by {name} at generator iteration {step}; saved {path}"
        job = slurm_job_id()
        if signum == signal.SIGUSR1 and self.requeue and job:
            if trainer.is_global_zero:
                message += "; " + requeue(job)
        else:
            message += f" (continue with --resume {path} or --resume last)"
        raise TrainingStopped(message, exit_code=128 + signum)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        if self._epoch_loop is not None:
            self._epoch_loop.__dict__.pop("_broadcast_sigterm_tensor", None)
            self._epoch_loop = None
        self._group = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()


def _nothing() -> None:
    pass


def requeue(job: str) -> str:
    """Runs `scontrol requeue <job>`; says what happened."""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"could not requeue SLURM job {job}: {error}"
    if done.returncode:
        return f"`scontrol requeue {job}` failed: {(done.stderr or done.stdout).strip()}"
    return f"requeued SLURM job {job}"


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes for this SLURM job (array jobs: `<array job>_<task>`), or None."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")
