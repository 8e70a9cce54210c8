"""The `sagan` console command: one verb per file of this package, `fit`/`validate`/`test` through the
LightningCLI (`sagan.cli.SaganCLI`).

    sagan fit|validate|test ...   train or score a module from a YAML experiment (LightningCLI)
    sagan sample ...              images or sentences from a checkpoint (commands/sample.py)
    sagan eval ...                FID / IS / KID of a checkpoint (commands/evaluate.py)
    sagan bench ...               training and data-loading speed (commands/bench.py)
    sagan bench-quality ...       sample quality for a fixed budget (commands/bench_quality.py)
    sagan bench-gpu ...           the GPU speed table, with the peers (commands/bench_gpu.py)
    sagan attention ...           attention maps of a checkpoint as PNG panels (commands/attention.py)
    sagan export ...              the EMA generator alone: TorchScript, torch.export or ONNX (commands/export.py)
    sagan interpolate ...         latent and class interpolation as a PNG strip and a GIF (commands/interpolate.py)
    sagan repair ...              repair images with a repair checkpoint, or damage them (commands/repair.py)

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

# verb -> module of this package whose `main(argv)` runs it; any other verb goes to the LightningCLI
VERBS = {
    "sample": "sample",
    "eval": "evaluate",
    "bench": "bench",
    "bench-quality": "bench_quality",
    "bench-gpu": "bench_gpu",
    "attention": "attention",
    "export": "export",
    "interpolate": "interpolate",
    "repair": "repair",
}


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
        if argv[:1] and argv[0] in VERBS:
            importlib.import_module(f"sagan.commands.{VERBS[argv[0]]}").main(argv[1:])
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
