"""Shared fixtures: seeded tests, offline W&B, tiny networks and one tiny trained run."""

import os
import random
import tempfile
from pathlib import Path

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
# Tiny test networks gain nothing from intra-op threads, and on a busy machine OpenMP threads spinning
# for a core cost 10x; subprocesses (DDP, signal tests) inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# classifiers and real-data statistics are cached here for the session (a folder per pytest-xdist worker),
# never in the user's cache
os.environ["SAGAN_CACHE"] = tempfile.mkdtemp(prefix="sagan-test-cache-")
# Inception weights are fetched at start-up when missing: tests never reach the network (a URL that fails at once)
os.environ["SAGAN_INCEPTION_URL"] = "file:///nonexistent/sagan-tests-never-download-inception.pth"

import numpy as np
import pytest
import torch
import yaml
from audiofixtures import make_audio_folder
from datafixtures import make_celeba, make_cifar10, make_class_folder, make_imagenet
from videofixtures import make_video_folder

from sagan.commands import main
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


# Shrinks the inpainting experiment on the digits: tiny networks, a few fixed validation images.
TINY_INPAINT = [
    "--config", str(EXPERIMENTS / "inpaint_digits.yaml"),
    "--data.init_args.data.init_args.batch_size=8",
    "--model.generator.init_args.width=4", "--model.generator.init_args.num_heads=2",
    "--model.generator.init_args.transformer_depth=1", "--model.generator.init_args.dilated_blocks=1",
    "--model.discriminator.init_args.width=4",
    "--model.grid_size=4",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


# Shrinks the text experiments: a small oracle, small networks, few evaluation samples.
TINY_TEXT_MODEL = [
    "--model.generator.init_args.dim=16", "--model.generator.init_args.depth=1",
    "--model.discriminator.init_args.dim=16", "--model.discriminator.init_args.depth=1",
    "--model.num_eval_samples=8", "--model.grid_size=4", "--model.n_critic=1",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]
TINY_ORACLE = [
    "--config", str(EXPERIMENTS / "textgan_oracle.yaml"),
    "--data.init_args.num_train=64", "--data.init_args.num_valid=16", "--data.init_args.num_test=8",
    "--data.init_args.vocab_size=30", "--data.init_args.seq_len=6", "--data.init_args.batch_size=8",
    "--trainer.val_check_interval=4", "--trainer.limit_val_batches=1",
    *TINY_TEXT_MODEL,
]

CORPUS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song",
    "my cat likes the warm sun",
    "a small dog sleeps all day",
    "the park is green in may",
    "birds fly over the old park",
    "the sun is warm today",
]


def write_corpus(path: Path, lines: list[str] | None = None, repeat: int = 4) -> Path:
    """A small UTF-8 corpus file, one sentence per line."""
    path.write_text("\n".join((lines or CORPUS) * repeat) + "\n", encoding="utf-8")
    return path


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


def fit_repair(tmp_path: Path, *args: str) -> Path:
    """Runs `sagan fit` on the tiny inpainting experiment in-process; returns the run directory."""
    main(["fit", *TINY_INPAINT, "--run_root", str(tmp_path / "runs"), "--tracker", "csv", *args])
    runs = sorted((tmp_path / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


def fit_text(tmp_path: Path, *args: str) -> Path:
    """Runs `sagan fit` on the tiny oracle experiment in-process; returns the run directory."""
    main(["fit", *TINY_ORACLE, "--run_root", str(tmp_path / "runs"), "--tracker", "csv", *args])
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


# Data modules that read files: the fixture each needs (written under the given folder) and its root.
DATA_FIXTURES = {
    "datamodules.image.celeba.CelebADataModule": make_celeba,
    "datamodules.image.cifar10.CIFAR10DataModule": make_cifar10,
    "datamodules.image.folder.ImageFolderDataModule": make_class_folder,
    "datamodules.image.imagenet.ImageNetDataModule": make_imagenet,
    "datamodules.video.folder.VideoFolderDataModule": make_video_folder,
    "datamodules.audio.folder.AudioFolderDataModule": make_audio_folder,
}
SMALL_BATCHES = {"datamodules.image.digits.DigitsDataModule", "datamodules.video.moving_digits.MovingDigitsDataModule",
                 "datamodules.audio.spoken_digits.SpokenDigitsDataModule", *DATA_FIXTURES}
# Video experiments made smaller: fewer clips (a moving-digits classifier trained for 2 batches); 4 frames
# and narrower networks for the GPU-sized video-folder experiment.
SMALL_DATA = {
    "datamodules.video.moving_digits.MovingDigitsDataModule": [
        "--data.init_args.num_train=64", "--data.init_args.num_val=8", "--metrics.features.init_args.train_steps=2",
    ],
    "datamodules.video.folder.VideoFolderDataModule": ["--data.init_args.num_frames=4"],
}
# Data modules that wrap an image data module given as their `data` argument (image repair).
WRAPPERS = {"datamodules.repair.damaged.RepairDataModule"}
# Experiments whose full-size networks would take a minute for one step on CPU: narrower networks, same
# layout (their exact sizes are checked on the meta device in tests/test_reference_models.py).
NARROW_NETWORKS = {
    "sagan_imagenet": ["--model.generator.init_args.width=4", "--model.discriminator.init_args.width=4"],
    "sagan_celeba": ["--model.generator.init_args.width=8", "--model.discriminator.init_args.width=8"],
    "sagan_folder": ["--model.generator.init_args.width=8", "--model.discriminator.init_args.width=8"],
    "sagan_folder_wide": ["--model.generator.init_args.width=8", "--model.discriminator.init_args.width=8"],
    "transgan_celeba": ["--model.generator.init_args.dims=[64,32,16,16]", "--model.discriminator.init_args.dim=48",
                        "--model.discriminator.init_args.depth=2"],
    "transgan_cifar10": ["--model.generator.init_args.dims=[64,16,4]", "--model.discriminator.init_args.dim=32"],
    "videotransformer_videos": ["--model.init_args.generator.init_args.dims=[32,16,16]",
                                "--model.init_args.discriminator.init_args.dim=32",
                                "--model.init_args.discriminator.init_args.depth=1"],
    "videohybrid_videos": ["--model.init_args.generator.init_args.dims=[32,32,16,16,8]",
                           "--model.init_args.generator.init_args.latent_dim=32",
                           "--model.init_args.discriminator.init_args.dims=[8,16,16,32]"],
    "speechgan_spoken_digits": ["--model.generator.init_args.dims=[32,32,16,16]",
                                "--model.discriminator.init_args.widths=[32,32,32]"],
    "speechgan_sc09": ["--model.generator.init_args.dims=[32,32,16,16]", "--model.discriminator.init_args.widths=[32,32,32]",
                       "--model.discriminator.init_args.wave_scales=1"],
}
# Data modules whose metric classifier takes a minute to train: fast_dev_runs leave their metrics off
# (tests/test_speech_features.py runs the metric on an untrained classifier instead).
NO_METRICS = {"datamodules.audio.spoken_digits.SpokenDigitsDataModule"}
# Text data modules: the overrides that give each tiny data (a corpus written under the folder, fewer
# oracle sequences from the same oracle).
TEXT_FIXTURES = {
    "datamodules.text.corpus.TextDataModule": lambda tmp: [
        f"--data.init_args.path={write_corpus(tmp / 'corpus.txt')}", "--data.init_args.batch_size=8",
        "--data.init_args.max_length=8",
    ],
    "datamodules.text.oracle.OracleDataModule": lambda tmp: [
        "--data.init_args.num_train=128", "--data.init_args.num_valid=64", "--data.init_args.num_test=64",
    ],
}


def experiment_data_args(experiment: Path, tmp_path: Path) -> list[str]:
    """CLI overrides that run `experiment` on tiny data: for a data set read from files, a fixture in
    the real layout is written under tmp_path and the data module's root points at it; known image
    data modules also get batches of 2 and no worker processes."""
    data = yaml.safe_load(experiment.read_text()).get("data") or {}
    if isinstance(data, str):  # a shared data piece: `data: data/celeba.yaml`
        data = yaml.safe_load((experiment.parent / data).read_text()) or {}
    prefix, wrapped = "--data.init_args.", data.get("class_path") in WRAPPERS
    if wrapped:  # the wrapped module's arguments are one level further down
        data, prefix = (data.get("init_args") or {}).get("data") or {}, "--data.init_args.data.init_args."
    class_path = data.get("class_path", "")
    args = []
    if class_path in DATA_FIXTURES:
        root = DATA_FIXTURES[class_path](tmp_path / "data")
        # real data sets are scored with Inception, whose weights tests cannot download
        args += [f"{prefix}root={root}", "--metrics.features=null"]
        if wrapped:  # the repair GAN's own metrics
            args += ["--model.init_args.evaluation=null"]  # PSNR / SSIM / hole L1 only
    if class_path in NO_METRICS:
        args += ["--metrics.features=null"]
    if class_path in SMALL_BATCHES:
        args += [f"{prefix}batch_size=2", f"{prefix}num_workers=0"]
    if class_path in TEXT_FIXTURES:
        args += TEXT_FIXTURES[class_path](tmp_path)
    return args + SMALL_DATA.get(class_path, []) + NARROW_NETWORKS.get(experiment.stem, [])
