"""`SaganCLI`: the LightningCLI behind `sagan fit`, `validate` and `test` (`sagan.commands` dispatches to it).

This file wires things together and holds no training logic: data facts are linked into the networks,
and each `fit` gets a run directory `<run_root>/<name>/<timestamp>/` (config, samples, checkpoints,
metrics.csv, W&B), created exclusively once everything is built (`<timestamp>-1`, ... when a run started in
the same second; removed again when the run fails before its first step). A resume is checked against
the config before its run directory is touched. A budget on the command line (`--g_iters` or
`--trainer.max_steps`) wins over the config file's. Configuration mistakes end in one line on stderr and
exit status 2. Checkpoints are written atomically and loaded weights-only, a signal ends training with a
checkpoint, and whenever Lightning would pick DDP the GAN-aware `GANDDPStrategy` is used
(sagan/training/distributed.py).
"""

import importlib
import itertools
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Literal, NoReturn

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from sagan.errors import UsageError
from sagan.errors import one_line as _one_line  # moved to sagan.errors; the old name stays
from sagan.evaluation.metrics import SampleQuality
from sagan.training.checkpoints import check_checkpoint, check_resumable, renamed_in, upgrade_config
from sagan.training.distributed import plain_ddp_is_gan_ddp
from sagan.training.init_from import init_from
from sagan.training.predictions import ImagePredictionWriter
from sagan.training.resume import AtomicCheckpointIO, RunCheckpoint, SignalCheckpoint
from sagan.training.sample_grid import SampleGrid
from sagan.training.tracking import CSVTracker, TrainingProgressBar, WandbTracker, output_lines, wandb_run_id
from sagan.training.trusted_classes import check_class_paths, class_paths_in

# Facts of the data set that the networks are built from (a link whose source attribute or target
# parameter does not exist is skipped: image data has no vocab_size, a text network no image_size).
DATA_FACTS = ("image_size", "channels", "num_classes", "vocab_size", "seq_len", "sample_rate", "num_samples")
DATA_FACTS += ("num_frames",)  # video data: frames per clip
NETWORKS = ("generator", "discriminator")
# Facts of the data set that the LightningModule itself takes (the text GAN decodes with the vocabulary;
# the repair GAN inpaints or restores as its data says).
MODULE_FACTS = ("vocabulary", "task")
# LightningCLI verbs that need a step the module may not have: verb -> (hook, what to use instead)
VERB_STEPS = {
    "test": ("test_step", "score a checkpoint with `sagan validate` or `sagan eval`"),
    "predict": ("predict_step", "draw samples with `sagan sample`"),
}


RANGE_ERROR = re.compile(r"^\w+: \S+ must be a finite number [^\n]*$")  # sagan.errors.check_range's message


def _own_message(error: BaseException) -> str | None:
    """The message of a UsageError (or of a range check) that jsonargparse wrapped into its own error."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, UsageError) or (isinstance(error, ValueError) and RANGE_ERROR.match(str(error))):
            return str(error)
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _model_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def command_line_keys(argv: list[str]) -> set[str]:
    """The option names given on the command line (`--trainer.max_steps=4` and `--g_iters 5` give
    "trainer.max_steps" and "g_iters"), to tell them from values that came from config files."""
    return {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")}


def check_yaml_files(argv: list[str]) -> None:
    """Refuses, naming the file and the problem, a YAML file on the command line that does not parse."""
    for token in argv:
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        path = Path(value)
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            yaml.safe_load(path.read_text())
        except UnicodeDecodeError as error:
            raise UsageError(f"{path}: not a text file ({error.reason} at byte {error.start})") from error
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = " ".join(str(getattr(error, "problem", None) or error).split())
            raise UsageError(f"{path}: invalid YAML{where}: {problem}") from error


def run_stamp() -> str:
    """The name of a new run's directory: the local time it starts, to the second."""
    return time.strftime("%Y%m%d-%H%M%S")


def reserve_run_dir(parent: Path, stamp: str) -> Path:
    """Creates `<parent>/<stamp>` exclusively (no other run can get it), or `<stamp>-1`, `<stamp>-2`, ...
    when a run started in the same second took it.

    Raises:
        UsageError: (one line) the folder cannot be created: the run root is a file, read-only, ...
    """
    candidate = parent / stamp
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for k in itertools.count(1):
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                candidate = parent / f"{stamp}-{k}"
    except OSError as error:
        raise UsageError(
            f"cannot create the run directory {candidate}: {error.strerror or error} (--run_root must be a writable folder)"
        ) from error
    raise AssertionError("unreachable")


class _Parser(LightningArgumentParser):
    """Argument parser whose errors are one line, not a usage dump."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        moved = "".join(f"; {old} is now {new}" for old, new in renamed_in(str(message)))
        sys.stderr.write(f"sagan: error: {_one_line(message)}{moved} (see: {self.prog} --help)\n")
        sys.exit(2)


class _SaveConfig(SaveConfigCallback):
    """Writes the resolved config of a `fit` to its run directory and hands it to W&B, once training starts:
    a run that fails to start (or a resume that is refused) leaves the run directory's `config.yaml` alone."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pass

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().setup(trainer, pl_module, "fit")  # validate/test runs have no run directory of their own

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            if type(logger).__name__ in ("WandbLogger", "WandbTracker"):
                logger.experiment.config.update({"config": config}, allow_val_change=True)


class SaganCLI(LightningCLI):
    """LightningCLI with argument links, run directories and generator-iteration budgets."""

    run_dir: Path | None = None
    _new_run_dir = False  # this process created `run_dir` (a new run, not a resumed one)
    _init_from_recorded = False  # `init_from` came from a resumed run's config.yaml: a record, nothing to load

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
            "(n_critic + 1); TextGAN: MLE steps count one each). A budget on the command line (--g_iters or "
            "--trainer.max_steps) wins over the config file's; giving both on the command line is an error.",
        )
        parser.add_argument("--name", type=str | None, default=None, help="Run name; default: the --config file's stem.")
        parser.add_argument("--run_root", type=str, default="runs", help="Runs go to <run_root>/<name>/<timestamp>/.")
        parser.add_argument(
            "--resume", type=str | None, default=None,
            help='"last" (the newest checkpoint of this run name), "auto" (the same, or a new run if there is none: '
            'for jobs that restart themselves) or a checkpoint path; continues that run.',
        )
        parser.add_argument(
            "--init_from", type=str | None, default=None,
            help="A `sagan fit` checkpoint whose generator, discriminator and EMA generator this new run starts "
            "from (fine-tuning): fresh optimizers, counters and run directory; class embeddings are re-initialized "
            "when the data's number of classes differs, any other mismatch is refused. Not with --resume.",
        )
        parser.add_argument(
            "--init_classes", type=list[int] | None, default=None,
            help="With --init_from and another number of classes: for each class of this data, the checkpoint's "
            "class whose embeddings it starts from (e.g. [3,5,8]); default: re-initialized.",
        )
        parser.add_argument(
            "--tracker", type=Literal["wandb", "csv", "none"], default="wandb",
            help="Where metrics go: wandb (W&B and metrics.csv), csv (metrics.csv only) or none.",
        )
        parser.add_argument("--online", type=bool, default=False, help="Sync W&B live (needs an account); else offline.")
        parser.add_argument("--wandb_project", type=str, default="sagan", help="W&B project.")
        parser.add_lightning_class_args(SignalCheckpoint, "signals")  # first: its handlers go in before anything else
        parser.add_lightning_class_args(SampleGrid, "samples")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(SampleQuality, "metrics")
        parser.add_lightning_class_args(ImagePredictionWriter, "predictions")
        parser.set_defaults(
            {"checkpoint.save_last": True, "checkpoint.save_top_k": -1, "checkpoint.every_n_train_steps": 1000}
        )

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        self.argv = [str(a) for a in (sys.argv[1:] if args is None else args)] if not isinstance(args, dict) else []
        check_yaml_files(self.argv)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Lightning parses the hyper-parameters of a `--ckpt_path` checkpoint into the config, which imports
        the classes they name: those are checked first (this project's, or ones the config names)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            try:
                checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu", mmap=True)
            except Exception as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UsageError(
                    f"cannot load {ckpt_path}: it does not load with torch.load(weights_only=True) ({first})"
                ) from error
            hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
            named = class_paths_in(self.config[subcommand].as_dict())  # the user's own config names these
            check_class_paths(upgrade_config(hparams or {}), str(ckpt_path), named)
        super()._parse_ckpt_path()

    # ------------------------------------------------------------------------------- run set-up
    def _budget(self, cfg) -> None:
        """trainer.max_steps from the budget: the command line's (--g_iters or --trainer.max_steps) wins over
        a config file's; both on the command line, or both in the config files, are refused."""
        given = command_line_keys(getattr(self, "argv", []))
        if "g_iters" in given and "trainer.max_steps" in given:
            raise UsageError("--g_iters and --trainer.max_steps both set the training budget: give one of them")
        if "trainer.max_steps" in given:
            cfg.g_iters = None  # the command line's budget replaces the config file's
            return
        if cfg.g_iters is None:
            return
        if "g_iters" not in given and cfg.trainer.get("max_steps") not in (None, -1):
            raise UsageError(
                f"the config sets both g_iters ({cfg.g_iters}) and trainer.max_steps ({cfg.trainer.max_steps}): "
                "keep one, or give the budget on the command line"
            )
        if cfg.g_iters < 1:
            raise UsageError(f"--g_iters must be >= 1, got {cfg.g_iters}")
        optimizer_steps = getattr(_model_class(cfg.model.class_path), "optimizer_steps", None)
        if optimizer_steps is None:
            raise UsageError(f"--g_iters: {cfg.model.class_path} does not count generator iterations; use --trainer.max_steps")
        cfg.trainer.max_steps = optimizer_steps(cfg.g_iters, cfg.model.get("init_args") or {})

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand != "fit":
            hook, instead = VERB_STEPS.get(self.subcommand, (None, ""))
            if hook and getattr(_model_class(cfg.model.class_path), hook) is getattr(L.LightningModule, hook):
                raise UsageError(f"{cfg.model.class_path} has no {hook}, so `sagan {self.subcommand}` cannot run it; {instead}")
            cfg.trainer.logger = cfg.trainer.logger or False
            return
        self._budget(cfg)
        configs = cfg.get("config") or []
        cfg.name = cfg.name or (Path(str(configs[0])).stem if configs else "sagan")
        self._checkpoint_dir_given = cfg.checkpoint.dirpath is not None
        if cfg.init_classes is not None and not cfg.init_from:
            raise UsageError("--init_classes maps the classes of an --init_from checkpoint: give --init_from too")
        if cfg.init_from:
            if cfg.resume or cfg.get("ckpt_path"):
                raise UsageError("--init_from starts a new run from a checkpoint's weights, --resume continues a run: give one of them")
            check_checkpoint(cfg.init_from)  # missing, truncated or foreign: refused before anything is built
            cfg.init_from = str(Path(cfg.init_from).resolve())  # config.yaml records the source
        resume = self._resolve_resume(cfg.resume, Path(cfg.run_root) / cfg.name) if cfg.resume else None
        if resume is not None:
            cfg.ckpt_path = str(resume)
            if resume.parent.name == "checkpoints":
                self.run_dir = resume.parent.parent
        self._init_from_recorded = False
        if self.run_dir is not None and not cfg.init_from:  # a resumed fine-tuning run keeps its source recorded
            saved = self.run_dir / "config.yaml"
            try:
                recorded = (yaml.safe_load(saved.read_text()) or {}).get("init_from") if saved.is_file() else None
            except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
                recorded = None  # the resume's own checks say what is wrong with the run, if anything
            cfg.init_from, self._init_from_recorded = recorded, recorded is not None
        # a new run's directory is made (exclusively) once everything is built, see instantiate_trainer
        self._stamp = run_stamp()
        run_dir = self.run_dir or Path(cfg.run_root) / cfg.name / self._stamp
        self._set_run_dir(cfg, run_dir)

    def _set_run_dir(self, cfg, run_dir: Path) -> None:
        cfg.trainer.default_root_dir = str(run_dir)
        if not self._checkpoint_dir_given:
            cfg.checkpoint.dirpath = str(run_dir / "checkpoints")

    @staticmethod
    def _resolve_resume(resume: str, runs: Path) -> Path | None:
        if resume in ("last", "auto"):
            # last-v<k>.ckpt: written beside last.ckpt by versions that versioned it after a settings change
            found = sorted(runs.glob("*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
            if not found and resume == "last":
                raise UsageError(f"nothing to resume: no {runs}/*/checkpoints/last.ckpt")
            return found[-1] if found else None
        if not Path(resume).is_file():
            raise UsageError(f"checkpoint to resume not found: {resume} (expected 'last', 'auto' or a .ckpt path)")
        return Path(resume)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, MisconfigurationException) as error:  # a constructor rejected its configuration
            self._remove_new_run_dir()
            raise UsageError(_own_message(error) or _one_line(str(error))) from error
        except BaseException:
            self._remove_new_run_dir()
            raise

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
        cfg.metrics.resolve(self.datamodule)  # its extractor checks (or fetches) its weights now, before any run directory
        if self.subcommand == "fit":
            if cfg.get("ckpt_path"):  # a resume that would fail is refused before its run directory is touched
                check_resumable(Path(cfg.ckpt_path), self.model, self.config[self.subcommand].model.class_path)
            if cfg.get("init_from") and not self._init_from_recorded:  # refused before the run directory exists
                class_path = self.config[self.subcommand].model.class_path
                line = init_from(cfg.init_from, self.model, class_path, cfg.get("init_classes"))
                if rank_zero_only.rank == 0:
                    print(line, file=sys.stderr, flush=True)
            if self.run_dir is None and rank_zero_only.rank == 0:  # other ranks write nothing
                self.run_dir = reserve_run_dir(Path(cfg.run_root) / cfg.name, self._stamp)
                self._new_run_dir = True
                self._set_run_dir(self.config[self.subcommand], self.run_dir)  # the suffix, if any, in config.yaml
                kwargs["default_root_dir"] = str(self.run_dir)
                checkpoint = self._get(self.config_init, "checkpoint")
                if not self._checkpoint_dir_given and checkpoint is not None:
                    checkpoint.dirpath = str(self.run_dir / "checkpoints")
            if cfg.trainer.get("logger") is None:
                kwargs["logger"] = self._make_loggers(cfg)
            callbacks = cfg.trainer.get("callbacks") or []
            callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
            if cfg.trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
                kwargs["callbacks"] = [*callbacks, TrainingProgressBar()]
        plugins = cfg.trainer.get("plugins")
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [] if plugins is None else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        try:
            with plain_ddp_is_gan_ddp():  # several devices or nodes: one DDP reducer per network
                trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:
            raise UsageError(_one_line(str(error))) from error
        for logger in trainer.loggers:
            if hasattr(logger, "attach"):
                logger.attach(trainer)  # rows carry the generator iteration
        return trainer

    def _make_loggers(self, cfg) -> list | bool:
        """metrics.csv (always, unless --tracker none) and a W&B run (--tracker wandb, offline by default)."""
        run_dir = self.run_dir or Path(cfg.trainer.default_root_dir)
        if cfg.tracker == "none":
            return False
        loggers = [CSVTracker(save_dir=str(run_dir))]
        if cfg.tracker == "wandb":
            loggers.insert(0, WandbTracker(
                project=cfg.wandb_project, name=cfg.name, id=wandb_run_id(cfg.name, run_dir), save_dir=str(run_dir),
                offline=not cfg.online, resume="allow",
            ))
        return loggers

    # ------------------------------------------------------------------------------------ running
    def fit(self, model: L.LightningModule, **kwargs) -> None:
        """`trainer.fit`; a new run that fails before its first optimizer step leaves no run directory."""
        try:
            self.trainer.fit(model, **kwargs)
        except BaseException:
            if self.trainer.global_step == 0:
                self._remove_new_run_dir()
            raise

    def _remove_new_run_dir(self) -> None:
        if not (self._new_run_dir and self.run_dir is not None and self.run_dir.is_dir()):
            return
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish(exit_code=1)  # it writes into the directory until it is closed
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self._new_run_dir = False

    def after_fit(self) -> None:
        if self.trainer.is_global_zero and self.run_dir is not None:
            print("\n".join(output_lines(self.trainer, self.run_dir)), flush=True)
        # Close the W&B run so that a later fit in the same process starts its own.
        if any("Wandb" in type(logger).__name__ for logger in self.trainer.loggers):
            import wandb

            wandb.finish()
