"""Where a run's numbers go and how they read: CSV and W&B loggers whose curves plot against generator
iterations, a progress bar with step losses and throughput, and the lines `sagan fit` prints at the end.

Shared by every task: nothing here knows a task. The generator iteration of a logged row is the module's
`generator_steps` when it has one (every GAN task does), else Lightning's `global_step`.

- `CSVTracker`: `<run dir>/metrics.csv`, one row per logging step, with a column `trainer/g_iter`.
  A resumed run moves the earlier segment's file to `metrics.<k>.csv` just before it writes its own first
  rows (never earlier, so a run that fails to start leaves the directory as it was); no `hparams.yaml`
  (`config.yaml` holds the resolved config).
- `WandbTracker`: W&B with `trainer/g_iter` as the step metric of every logged key (`define_metric`).
- `TrainingProgressBar`: the last step value of every logged `train/...loss` and images (or samples)
  per second, read from the device at most once a second.
- `add_to_wandb_summary`: puts numbers computed later (`sagan eval`) into the run's W&B summary.
"""

import os
import re
import time
import weakref
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from sagan.errors import check_ranges

G_ITER = "trainer/g_iter"  # the x-axis of every logged curve: generator iterations


def generator_iterations(trainer: L.Trainer) -> int:
    """The generator iterations done so far: the module's `generator_steps`, else `global_step`."""
    module = trainer.lightning_module
    return int(getattr(module, "generator_steps", trainer.global_step))


class _IterationAxis:
    """Logger mixin: every row of metrics carries `trainer/g_iter` (the CLI calls `attach(trainer)`)."""

    _trainer = None

    def attach(self, trainer: L.Trainer) -> None:
        self._trainer = weakref.ref(trainer)

    def _with_iteration(self, metrics: dict[str, Any]) -> dict[str, Any]:
        trainer = self._trainer() if self._trainer is not None else None
        if trainer is None or trainer.lightning_module is None:
            return metrics
        return {**metrics, G_ITER: generator_iterations(trainer)}


class _RunCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it never deletes an earlier `metrics.csv`: it moves it to
    `metrics.<k>.csv` right before writing the first rows of this run, and writes no `hparams.yaml`."""

    def _check_log_dir_exists(self) -> None:
        self._moved = False

    def log_hparams(self, params: dict[str, Any]) -> None:
        pass

    def save(self) -> None:
        if self.metrics and not self._moved:
            self._moved = True
            previous = Path(self.metrics_file_path)
            if previous.exists():  # a resumed run: the earlier segment's rows stay, in their own file
                k = 0
                while previous.with_name(f"metrics.{k}.csv").exists():
                    k += 1
                previous.rename(previous.with_name(f"metrics.{k}.csv"))
        super().save()


class CSVTracker(_IterationAxis, CSVLogger):
    """`metrics.csv` in the run directory (`save_dir`), with the generator iteration of every row.

    Args:
        save_dir: the run directory.
    """

    def __init__(self, save_dir: str):
        super().__init__(save_dir=save_dir, name="", version="")

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and rank_zero_only.rank == 0:
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _RunCSVWriter(log_dir=self.log_dir)
        return super().experiment

    def log_hyperparams(self, params: Any = None) -> None:
        pass  # config.yaml holds the resolved config

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics(self._with_iteration(metrics), step)


class WandbTracker(_IterationAxis, WandbLogger):
    """Lightning's W&B logger with the generator iteration (`trainer/g_iter`) as every key's step metric.

    Takes WandbLogger's arguments.
    """

    @property
    def experiment(self):
        fresh = self._experiment is None
        run = super().experiment
        if fresh and self._experiment is not None and hasattr(run, "define_metric"):
            run.define_metric(G_ITER)
            run.define_metric("*", step_metric=G_ITER, step_sync=True)  # replaces Lightning's global_step axis
        return run

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics(self._with_iteration(metrics), step)


def _batch_size(batch: Any) -> tuple[int, int]:
    """(number of samples, dimensions of a sample tensor) of a batch: a tensor, or the first tensor of a
    tuple, list or dict."""
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        batch = next((item for item in batch if isinstance(item, torch.Tensor)), None)
    if isinstance(batch, torch.Tensor) and batch.dim() > 0:
        return batch.shape[0], batch.dim()
    return 0, 0


class TrainingProgressBar(TQDMProgressBar):
    """TQDM bar that shows the last step value of each logged `train/...loss` (`d_loss`, `g_loss`,
    `mle_loss`, ...) and the training throughput (`img/s` for image batches, `samples/s` otherwise, over
    all ranks). The values are read from the device at most every `every_s` seconds, so the bar costs a
    GPU no per-step synchronization.

    Args:
        refresh_rate: batches between redraws (0: no bar).
        every_s: seconds between readings of the losses and the throughput.
    """

    def __init__(self, refresh_rate: int = 1, every_s: float = 1.0):
        check_ranges("TrainingProgressBar", refresh_rate=(refresh_rate, "[0, inf)"), every_s=(every_s, "[0, inf)"))
        super().__init__(refresh_rate=refresh_rate)
        self.every_s = every_s
        self._samples = 0
        self._unit = "samples/s"
        self._window: tuple[float, int] | None = None
        self._shown: dict[str, str] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._window, self._shown = (time.perf_counter(), self._samples), {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        n, dims = _batch_size(batch)
        self._samples += n * trainer.world_size
        self._unit = "img/s" if dims == 4 else "samples/s"
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self._window = (time.perf_counter(), self._samples)  # validation time is not training throughput

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        now = time.perf_counter()
        due = self._window is None or not self._shown or now - self._window[0] >= self.every_s
        if trainer.training and due:
            shown = {
                key.rsplit("/", 1)[-1]: f"{float(value):.3g}"
                for key, value in trainer.callback_metrics.items()
                if key.startswith("train/") and key.endswith("loss")
            }
            if self._window is not None and now > self._window[0]:
                shown[self._unit] = f"{(self._samples - self._window[1]) / (now - self._window[0]):.0f}"
            elif self._unit in self._shown:
                shown[self._unit] = self._shown[self._unit]
            self._shown, self._window = shown, (now, self._samples)
        return {**metrics, **self._shown}


# ------------------------------------------------------------------------------------------- W&B runs
def wandb_run_id(name: str, run_dir: Path) -> str:
    """The W&B run id of a run directory: `<name>-<directory name>`, in W&B's alphabet."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{name}-{Path(run_dir).name}")


def add_to_wandb_summary(run_dir: Path, config: dict, values: dict[str, float]) -> str | None:
    """Adds `values` to the summary of the run's W&B run (offline, unless the run logged online), when the
    run tracked with W&B; returns the `wandb sync` command for an offline run (or the run's URL), else None."""
    if config.get("tracker", "wandb") != "wandb" or not (Path(run_dir) / "wandb").is_dir():
        return None
    import wandb

    online = bool(config.get("online"))
    run = wandb.init(
        project=config.get("wandb_project") or "sagan", id=wandb_run_id(config.get("name") or "sagan", run_dir),
        dir=str(run_dir), mode="online" if online else "offline", resume="allow",
    )
    try:
        run.summary.update(values)
        where = run.url if online else f"wandb sync {Path(run.dir).parent}"
    finally:
        run.finish()
    return where


def output_lines(trainer: L.Trainer, run_dir: Path) -> list[str]:
    """What a finished `fit` prints: where its samples, checkpoints and metrics are, and how to upload an
    offline W&B run."""
    run_dir = Path(run_dir)
    lines = [f"sagan: run {run_dir} ({generator_iterations(trainer)} generator iterations)"]
    samples = sorted((run_dir / "samples").glob("*_*.*"))
    if samples:
        earlier = f" (and {len(samples) - 1} earlier)" if len(samples) > 1 else ""
        lines.append(f"  samples:      {samples[-1]}{earlier}")
    callback = trainer.checkpoint_callback
    last = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
    if last:
        lines.append(f"  checkpoints:  {last}")
    lines += [f"  metrics:      {Path(lg.log_dir) / 'metrics.csv'}" for lg in trainer.loggers if isinstance(lg, CSVLogger)]
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            upload = f"wandb sync {Path(run.dir).parent}" if logger._offline else run.url
            lines.append(f"  W&B:          {upload}" + (" (an offline run: upload it with this)" if logger._offline else ""))
    return lines
