"""`SaganCLI`: the LightningCLI behind `sagan fit`, `validate` and `test` (`sagan.commands` dispatches to it).

This file wires things together and holds no training logic: data facts are linked into the networks,
each `fit` gets a run directory `<run_root>/<name>/<timestamp>/` (config, samples, checkpoints, logs),
and configuration mistakes end in one line on stderr and exit status 2. Checkpoints are written atomically
and loaded weights-only, a signal ends training with a checkpoint, and whenever Lightning would pick DDP
the GAN-aware `GANDDPStrategy` is used (sagan/training/distributed.py).
"""

import importlib
import re
import sys
import time
from pathlib import Path
from typing import Literal, NoReturn

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from sagan.errors import UsageError
from sagan.evaluation.metrics import SampleQuality
from sagan.training.checkpoints import renamed_in
from sagan.training.distributed import plain_ddp_is_gan_ddp
from sagan.training.resume import AtomicCheckpointIO, SignalCheckpoint
from sagan.training.sample_grid import SampleGrid

# Facts of the data set that the networks are built from (a link whose source attribute or target
# parameter does not exist is skipped: image data has no vocab_size, a text network no image_size).
DATA_FACTS = ("image_size", "channels", "num_classes", "vocab_size", "seq_len")
NETWORKS = ("generator", "discriminator")
# Facts of the data set that the LightningModule itself takes (the text GAN decodes with the vocabulary;
# the repair GAN inpaints or restores as its data says).
MODULE_FACTS = ("vocabulary", "task")


def _one_line(message: str) -> str:
    """The most specific line of a nested jsonargparse message, prefixed with the key path it is about."""
    lines = [line.strip(" -") for line in str(message).splitlines() if line.strip(" -")]
    if not lines:
        return str(message)
    keys, last_key_line = [], -1
    for i, line in enumerate(lines):
        match = re.match(r'Parser key "([^"]+)":?\s*(.*)', line)
        if match:
            keys.append(match.group(1))
            last_key_line = i
            lines[i] = match.group(2)
    noise = ("NoneType", "Does not validate", "Subtypes:", "Errors:", "Given value", "Problem with given class_path")
    useful = [line for line in lines[last_key_line:] if line and not any(n in line for n in noise)]
    if not useful:
        useful = [line for line in lines if line and not any(n in line for n in noise)] or lines
    patterns = ("not accepted", "nrecognized", "does not exist", "No action", "not found", "Not a valid", "Expected")
    best = next((line for p in patterns for line in useful if p in line), useful[0])
    return f"{'.'.join(keys)}: {best}" if keys else best


def _model_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class _Parser(LightningArgumentParser):
    """Argument parser whose errors are one line, not a usage dump."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        moved = "".join(f"; {old} is now {new}" for old, new in renamed_in(str(message)))
        sys.stderr.write(f"sagan: error: {_one_line(message)}{moved} (see: {self.prog} --help)\n")
        sys.exit(2)


class _SaveConfig(SaveConfigCallback):
    """Writes the resolved config of a `fit` to its run directory and hands it to W&B."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # validate/test runs have no run directory of their own
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.config.update({"config": config}, allow_val_change=True)


class SaganCLI(LightningCLI):
    """LightningCLI with argument links, run directories and generator-iteration budgets."""

    def __init__(self, args: list[str] | None = None, run: bool = True):
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=_SaveConfig,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"log_every_n_steps": 25, "num_sanity_val_steps": 0},
            auto_configure_optimizers=False,
            parser_class=_Parser,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for fact in DATA_FACTS:
            for net in NETWORKS:
                parser.link_arguments(f"data.{fact}", f"model.init_args.{net}.init_args.{fact}", apply_on="instantiate")
        for fact in MODULE_FACTS:
            parser.link_arguments(f"data.{fact}", f"model.init_args.{fact}", apply_on="instantiate")
        parser.add_argument(
            "--g_iters", type=int | None, default=None,
            help="Training budget in generator iterations; sets trainer.max_steps from it (GAN: g_iters * "
            "(n_critic + 1); TextGAN: MLE steps count one each).",
        )
        parser.add_argument("--name", type=str | None, default=None, help="Run name; default: the --config file's stem.")
        parser.add_argument("--run_root", type=str, default="runs", help="Runs go to <run_root>/<name>/<timestamp>/.")
        parser.add_argument(
            "--resume", type=str | None, default=None,
            help='"last" (the newest checkpoint of this run name), "auto" (the same, or a new run if there is none: '
            'for jobs that restart themselves) or a checkpoint path; continues that run.',
        )
        parser.add_argument("--tracker", type=Literal["wandb", "csv", "none"], default="wandb", help="Where metrics go.")
        parser.add_argument("--online", type=bool, default=False, help="Sync W&B live (needs an account); else offline.")
        parser.add_argument("--wandb_project", type=str, default="sagan", help="W&B project.")
        parser.add_lightning_class_args(SignalCheckpoint, "signals")  # first: its handlers go in before anything else
        parser.add_lightning_class_args(SampleGrid, "samples")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(SampleQuality, "metrics")
        parser.set_defaults(
            {"checkpoint.save_last": True, "checkpoint.save_top_k": -1, "checkpoint.every_n_train_steps": 1000}
        )

    # ------------------------------------------------------------------------------- run set-up
    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand != "fit":
            cfg.trainer.logger = cfg.trainer.logger or False
            return
        init = cfg.model.get("init_args") or {}
        if cfg.g_iters is not None:
            if cfg.g_iters < 1:
                raise UsageError(f"--g_iters must be >= 1, got {cfg.g_iters}")
            optimizer_steps = getattr(_model_class(cfg.model.class_path), "optimizer_steps", None)
            if optimizer_steps is None:
                raise UsageError(f"--g_iters: {cfg.model.class_path} does not count generator iterations; use --trainer.max_steps")
            cfg.trainer.max_steps = optimizer_steps(cfg.g_iters, init)
        configs = cfg.get("config") or []
        cfg.name = cfg.name or (Path(str(configs[0])).stem if configs else "sagan")
        run_dir = None
        resume = self._resolve_resume(cfg.resume, Path(cfg.run_root) / cfg.name) if cfg.resume else None
        if resume is not None:
            self._check_loadable(resume)
            cfg.ckpt_path = str(resume)
            if Path(cfg.ckpt_path).parent.name == "checkpoints":
                run_dir = Path(cfg.ckpt_path).parent.parent
        if run_dir is None:
            run_dir = Path(cfg.run_root) / cfg.name / time.strftime("%Y%m%d-%H%M%S")
            while run_dir.exists():  # two runs started in the same second
                run_dir = run_dir.with_name(run_dir.name + "_")
        self.run_dir = run_dir
        cfg.trainer.default_root_dir = str(run_dir)
        cfg.checkpoint.dirpath = cfg.checkpoint.dirpath or str(run_dir / "checkpoints")

    @staticmethod
    def _resolve_resume(resume: str, runs: Path) -> Path | None:
        if resume in ("last", "auto"):
            found = sorted(runs.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
            if not found and resume == "last":
                raise UsageError(f"nothing to resume: no {runs}/*/checkpoints/last.ckpt")
            return found[-1] if found else None
        if not Path(resume).is_file():
            raise UsageError(f"checkpoint to resume not found: {resume} (expected 'last', 'auto' or a .ckpt path)")
        return Path(resume)

    @staticmethod
    def _check_loadable(path: Path) -> None:
        """Resuming unpickles with weights_only=True; refuse at start-up what that cannot load (mmap: cheap)."""
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UsageError(
                f"cannot resume from {path}: it does not load with torch.load(weights_only=True) ({first})"
            ) from error

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as error:  # a constructor rejected its configuration
            raise UsageError(_one_line(str(error))) from error

    def after_fit(self) -> None:
        # Close the W&B run so that a later fit in the same process starts its own.
        if any(type(logger).__name__ == "WandbLogger" for logger in self.trainer.loggers):
            import wandb

            wandb.finish()

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
        cfg.metrics.resolve(self.datamodule)  # its extractor checks its weights now, before any run directory
        if self.subcommand == "fit" and cfg.trainer.get("logger") is None:
            kwargs["logger"] = self._make_logger(cfg)
        plugins = cfg.trainer.get("plugins")
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [] if plugins is None else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        with plain_ddp_is_gan_ddp():  # several devices or nodes: one DDP reducer per network
            return super().instantiate_trainer(**kwargs)

    def _make_logger(self, cfg):
        run_dir = self.run_dir
        writer = rank_zero_only.rank == 0  # other ranks (torchrun, srun, Lightning's launcher) write nothing
        if writer:
            run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.tracker == "none":
            return False
        if cfg.tracker == "csv":
            from lightning.pytorch.loggers import CSVLogger

            previous = run_dir / "metrics.csv"
            if writer and previous.exists():  # a resumed run: CSVLogger would delete the earlier segment's metrics
                k = 0
                while (run_dir / f"metrics.{k}.csv").exists():
                    k += 1
                previous.rename(run_dir / f"metrics.{k}.csv")
            return CSVLogger(save_dir=str(run_dir), name="", version="")
        from lightning.pytorch.loggers import WandbLogger

        run_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"{cfg.name}-{run_dir.name}")
        return WandbLogger(
            project=cfg.wandb_project, name=cfg.name, id=run_id, save_dir=str(run_dir),
            offline=not cfg.online, resume="allow",
        )
