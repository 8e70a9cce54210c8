"""The `sagan` console command: `fit` / `validate` / `test` / `predict` through the LightningCLI
(`sagan.cli.SaganCLI`), and this project's own verbs, one module each (`VERBS`). `sagan --help` lists them all.

Errors the user can fix end in one line on stderr and exit status 2 (configuration, input files, and
operating-system errors: a full disk, a read-only or missing folder); a run stopped on purpose (signal,
non-finite losses) in one line and its own exit status; a process of a distributed run whose peer died in
one line and exit status 1.
"""

import importlib
import os
import sys
import warnings

from lightning.pytorch.utilities.rank_zero import rank_zero_only

from sagan.errors import (
    TrainingStopped, UsageError, describe_os_error, is_peer_failure, os_error_of, peer_failure_line,
)

# LightningCLI's verbs: (what it does)
LIGHTNING_VERBS = {
    "fit": "train a GAN from a YAML experiment (experiments/*.yaml)",
    "validate": "score a checkpoint with the run's validation metrics",
    "test": "score a checkpoint on the test split (text GANs)",
    "predict": "one EMA sample per held-out image, as PNGs",
}
# this project's verbs: (module whose `main(argv)` runs it, what it does)
VERBS = {
    "sample": ("sagan.commands.sample", "images, clips, sounds or sentences from a checkpoint"),
    "eval": ("sagan.commands.evaluate", "the metrics of a checkpoint (FID / IS / KID, repair metrics) as JSON"),
    "attention": ("sagan.commands.attention", "attention maps of a checkpoint as PNG panels"),
    "interpolate": ("sagan.commands.interpolate", "a walk through noise and classes as a PNG strip and a GIF"),
    "export": ("sagan.commands.export", "the EMA generator alone: TorchScript, torch.export or ONNX"),
    "repair": ("sagan.commands.repair", "repair images with a repair checkpoint, or damage them"),
    "bench": ("sagan.benchmarks.speed", "training and data-loading speed, as JSON lines"),
    "bench-quality": ("sagan.benchmarks.quality", "train, then sample quality against the floor and baselines"),
    "bench-gpu": ("sagan.benchmarks.gpu", "the GPU speed table, with the peers' own code"),
}


def usage() -> str:
    """`sagan --help`: every verb with one line."""
    width = max(map(len, [*LIGHTNING_VERBS, *VERBS]))
    lines = ["usage: sagan <verb> [options]   (sagan <verb> --help: the verb's options)", "",
             "train and score (LightningCLI):"]
    lines += [f"  {verb:<{width}}  {what}" for verb, what in LIGHTNING_VERBS.items()]
    lines += ["", "use a checkpoint:"]
    lines += [f"  {verb:<{width}}  {what}" for verb, (module, what) in VERBS.items() if module.startswith("sagan.commands")]
    lines += ["", "measure:"]
    lines += [f"  {verb:<{width}}  {what}" for verb, (module, what) in VERBS.items() if module.startswith("sagan.benchmarks")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `sagan` command."""
    args = argv  # None: LightningCLI reads sys.argv itself
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.filterwarnings("ignore", message=".*Using ModelCheckpoint with manual optimization.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the EMA generator, by design
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        if argv[:1] in (["-h"], ["--help"]):
            sys.stdout.write(usage())
        elif not argv:
            sys.stderr.write(usage())
            sys.exit(2)
        elif argv[0] in VERBS:
            importlib.import_module(VERBS[argv[0]][0]).main(argv[1:])
        else:
            from sagan.cli import SaganCLI

            SaganCLI(args=args)
    except UsageError as error:
        sys.stderr.write(f"sagan: error: {error}\n")
        sys.exit(2)
    except TrainingStopped as stop:
        if rank_zero_only.rank == 0:  # every rank stops; one says why
            sys.stderr.write(f"sagan: {stop}\n")
        sys.exit(stop.exit_code)
    except Exception as error:  # the environment, not the code: a full disk, a read-only folder, a dead peer
        os_error = os_error_of(error)
        if os_error is not None:
            sys.stderr.write(f"sagan: error: {describe_os_error(os_error)}\n")
            sys.exit(2)
        if is_peer_failure(error):
            sys.stderr.write(f"sagan: error: {peer_failure_line(error)}\n")
            sys.exit(1)
        raise
    finally:  # a run that stopped early still closes its W&B run, marked failed (after_fit closes the rest)
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish(exit_code=1)
