"""Shared fixtures: seeded tests, offline W&B, tiny networks and one tiny trained run."""

import os
import random
import tempfile
from pathlib import Path

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
# classifiers and real-data statistics are cached here for the session, never in the user's cache
os.environ["SAGAN_CACHE"] = tempfile.mkdtemp(prefix="sagan-test-cache-")

import numpy as np
import pytest
import torch

from sagan.cli import main
from sagan.models.sagan import TINY

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "experiments"

# Shrinks the default experiment to seconds on CPU while keeping its structure.
TINY_DIGITS = [
    "--config", str(EXPERIMENTS / "sagan_digits.yaml"),
    "--data.batch_size=8",
    "--model.generator.init_args.width=2", "--model.generator.init_args.z_dim=8",
    "--model.discriminator.init_args.width=1",
    "--model.grid_size=8",
    "--trainer.limit_val_batches=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)


def tiny(name: str, **overrides) -> torch.nn.Module:
    """A tiny network from the SAGAN presets."""
    cls, kwargs = TINY[name]
    return cls(**{**kwargs, **overrides})


def fit(tmp_path: Path, *args: str) -> Path:
    """Runs `sagan fit` on the tiny digits experiment in-process; returns the run directory."""
    main(["fit", *TINY_DIGITS, "--run_root", str(tmp_path / "runs"), "--tracker", "csv", *args])
    runs = sorted((tmp_path / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run: 6 generator iterations with a checkpoint every 4 optimizer steps."""
    tmp = tmp_path_factory.mktemp("trained")
    torch.manual_seed(0)
    return fit(
        tmp, "--g_iters=6", "--checkpoint.every_n_train_steps=4", "--samples.every_n_g_steps=3",
        "--trainer.log_every_n_steps=1",
    )
