"""The video GAN: GIF samples, augmentation per clip, exact resume, and training on two processes."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXPERIMENTS
from PIL import Image
from torch.testing import assert_close

from sagan.commands import main
from sagan.errors import UsageError
from sagan.layers.augment import DiffAugment
from sagan.models.video_transformer import TINY
from sagan.tasks.video import VideoGAN

# The moving-digits experiment shrunk to seconds: 4-frame clips, tiny networks, no metrics.
TINY_VIDEO = [
    "--config", str(EXPERIMENTS / "videotransformer_moving_digits.yaml"),
    "--data.init_args.batch_size=4", "--data.init_args.num_train=24", "--data.init_args.num_val=8",
    "--data.init_args.num_frames=4",
    "--model.init_args.generator.init_args.dims=[16,8,8,4]", "--model.init_args.generator.init_args.depths=[1,1,0,0]",
    "--model.init_args.generator.init_args.num_heads=2", "--model.init_args.generator.init_args.z_dim=8",
    "--model.init_args.generator.init_args.style_dim=8", "--model.init_args.discriminator.init_args.dim=8",
    "--model.init_args.discriminator.init_args.depth=1", "--model.init_args.discriminator.init_args.num_heads=2",
    "--model.init_args.grid_size=4", "--metrics.features=null", "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]


def _gan(**kwargs) -> VideoGAN:
    (g_cls, g_kwargs), (d_cls, d_kwargs) = TINY["video-generator-16"], TINY["video-discriminator-16"]
    return VideoGAN(g_cls(**g_kwargs), d_cls(**d_kwargs), grid_size=6, **kwargs)


class _VideoLogger:
    def __init__(self):
        self.calls = []

    def log_video(self, **kwargs):
        self.calls.append(kwargs)


def test_samples_are_an_animated_gif_grid_sent_to_video_loggers(tmp_path):
    model = _gan()
    logger = _VideoLogger()
    path = model.write_samples(tmp_path, 12, [logger, object()])
    assert path == tmp_path / "video_000012.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 4  # one GIF frame per clip frame
        assert gif.size == (2 * 18 + 2, 3 * 18 + 2)  # 6 clips of 16x16, 2 a row (int(sqrt(6))), 2 px padding
        gif.seek(1)
        second = torch.from_numpy(__import__("numpy").asarray(gif.convert("L"), dtype="float32"))
    with torch.no_grad():
        clips = model.fixed_samples()
    cell = second[2:18, 2:18] / 127.5 - 1  # the first clip's second frame, as drawn
    assert (cell - clips[0, 1, 0]).abs().max() < 0.02
    assert logger.calls == [{"key": "samples/video", "videos": [str(path)],
                             "caption": ["generator iteration 12"], "format": ["gif"]}]


def test_the_mode_seeking_term_compares_whole_clips_of_two_noises():
    # the default moving-digits GAN's G loss: the adversarial loss plus weight / (clip distance / noise distance)
    from sagan.models.video_hybrid import TINY as HYBRID
    from sagan.models.video_sprites import TINY as SPRITES

    (g_cls, g_kwargs), (d_cls, d_kwargs) = SPRITES["sprite-generator-16-whole"], HYBRID["hybrid-discriminator-16"]
    model = VideoGAN(g_cls(**g_kwargs), d_cls(**d_kwargs), grid_size=4, mode_seeking=0.5)
    model.discriminator.eval()  # its spectral norms do not iterate between the two passes
    z, _ = model.sample_noise(6, paired=True)
    real = torch.rand(6, 4, 1, 16, 16) * 2 - 1
    torch.manual_seed(0)
    with_term = model._generator_forward(z, None, real, None)
    model.mode_seeking = 0.0
    torch.manual_seed(0)
    without = model._generator_forward(z, None, real, None)
    torch.manual_seed(0)
    clips = model.generator(z, None).detach().numpy()  # [6, T, C, H, W]
    clip_distance = np.abs(clips[:3] - clips[3:]).mean()
    noise_distance = np.abs(z[:3].numpy() - z[3:].numpy()).mean()
    expected = 0.5 / (clip_distance / noise_distance + 1e-5)
    assert_close(with_term - without, torch.tensor(expected, dtype=torch.float32), rtol=1e-4, atol=1e-6)


def test_augmentation_moves_every_frame_of_a_clip_alike():
    torch.manual_seed(0)
    model = _gan(augment=DiffAugment(policy=("translation", "cutout")))
    seen = []
    model.discriminator.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    frame = torch.rand(2, 1, 1, 16, 16) * 2 - 1
    model.critic(frame.expand(-1, 4, -1, -1, -1), None)
    augmented = seen[0]
    assert augmented.shape == (2, 4, 1, 16, 16)
    assert_close(augmented, augmented[:, :1].expand_as(augmented), rtol=0, atol=0)  # the same for all frames
    assert not torch.equal(augmented[:, 0], frame[:, 0])
    with pytest.raises(UsageError, match="not color"):
        _gan(augment=DiffAugment(policy=("color",))).setup("validate")


def _fit(tmp_path: Path, *args: str) -> Path:
    main(["fit", *TINY_VIDEO, "--run_root", str(tmp_path / "runs"), "--tracker", "none", *args])
    return sorted((tmp_path / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)[-1]


@pytest.fixture(autouse=True)
def _nondeterministic_afterwards():
    yield
    torch.use_deterministic_algorithms(False)  # Trainer(deterministic=True) leaves it switched on


SHAPE = ["--model.n_critic=2", "--trainer.limit_train_batches=3", "--trainer.deterministic=true"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """3 generator iterations (6 batches, 2 epochs of 3) without a stop."""
    try:
        return _fit(tmp_path_factory.mktemp("straight"), "--g_iters=3", "--name=v", *SHAPE)
    finally:
        torch.use_deterministic_algorithms(False)


def test_stop_and_resume_ends_where_the_uninterrupted_run_ends(straight, tmp_path):
    first = _fit(tmp_path, "--g_iters=1", "--name=v", *SHAPE)  # stops mid-epoch
    resumed = _fit(tmp_path, "--g_iters=3", "--name=v", "--resume=last", *SHAPE)
    assert resumed == first
    a, b = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True) for run in (straight, resumed))
    assert a["global_step"] == b["global_step"] == 9
    assert_close(b["state_dict"], a["state_dict"], rtol=0, atol=0)  # G, D, the EMA
    assert_close([o["state"] for o in b["optimizer_states"]], [o["state"] for o in a["optimizer_states"]], rtol=0, atol=0)
    assert sorted(p.name for p in (resumed / "samples").glob("*.gif")) == ["video_000000.gif", "video_000001.gif",
                                                                            "video_000003.gif"]


def test_sample_writes_gifs_from_a_checkpoint(straight, tmp_path, capsys):
    main(["sample", "--ckpt", str(straight / "checkpoints" / "last.ckpt"), "--n", "3", "--out", str(tmp_path)])
    assert "clips (animated GIFs)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["000000.gif", "000001.gif", "000002.gif", "grid.gif"]
    with Image.open(tmp_path / "000001.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (32, 32)  # a single clip: no border


@pytest.mark.slow
def test_two_processes_keep_identical_weights_and_read_different_clips(tmp_path):
    from probes import fit_two_processes

    rank0, rank1 = fit_two_processes(tmp_path, *TINY_VIDEO, "--g_iters=2")
    assert rank0["world_size"] == 2 and rank0["wrapped"] == ["discriminator", "generator"]
    assert_close(rank1["params"], rank0["params"], rtol=0, atol=0)
    assert_close(rank1["ema"], rank0["ema"], rtol=0, atol=0)
    states = [[opt["state"] for opt in rank["optimizers"]] for rank in (rank0, rank1)]
    assert_close(states[1], states[0], rtol=0, atol=0)
    clips0, clips1 = torch.cat(rank0["batches"]).flatten(1), torch.cat(rank1["batches"]).flatten(1)
    assert len(clips0) == len(clips1) == 2 * 4
    assert not (clips0[:, None] == clips1[None]).all(dim=2).any()  # each rank its own shard
    assert not any(torch.equal(a, b) for a, b in zip(rank0["noise"], rank1["noise"]))
