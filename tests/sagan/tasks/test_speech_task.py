"""The speech GAN end to end: samples as WAV files and spectrograms, metrics at validation, `sagan sample`,
exact resume and two DDP processes, on the spoken-digits experiment shrunk to seconds."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXPERIMENTS, REPO
from scipy.io import wavfile
from probes import fit_two_processes
from probes import SHAPE, assert_same_training_state, recorded
from PIL import Image
from probes import records
from torch.testing import assert_close

from sagan.cli import SaganCLI
from sagan.commands import main
from sagan.training.checkpoints import load_module
from sagan.models.speech_transformer import TINY
from sagan.tasks.speech import SpeechGAN, spectrogram_images
from sagan.training.distributed import GANDDPStrategy

TINY_SPEECH = [
    "--config", str(EXPERIMENTS / "speechgan_spoken_digits.yaml"),
    "--data.batch_size=4",
    "--model.generator.init_args.global_dim=8", "--model.generator.init_args.frame_noise_dim=2",
    "--model.generator.init_args.dims=[8, 8, 8, 8]", "--model.generator.init_args.attention_depth=1",
    "--model.generator.init_args.num_heads=2", "--model.generator.init_args.style_dim=8",
    "--model.generator.init_args.griffin_lim_iters=2",
    "--model.discriminator.init_args.widths=[8, 8, 8]", "--model.discriminator.init_args.num_heads=2",
    "--model.grid_size=4", "--metrics.features=null",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]


def fit_speech(tmp_path, *args: str):
    main(["fit", *TINY_SPEECH, "--run_root", str(tmp_path / "runs"), "--tracker=csv", *args])
    return sorted((tmp_path / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)[-1]


def _tiny_gan(**kwargs) -> SpeechGAN:
    (g_cls, g_kwargs), (d_cls, d_kwargs) = TINY["generator-cond"], TINY["discriminator-cond"]
    return SpeechGAN(g_cls(**g_kwargs), d_cls(**d_kwargs), **kwargs)


class _MediaLogger:
    def __init__(self):
        self.audio, self.images = [], []

    def log_audio(self, key, audios, **kwargs):
        self.audio.append((key, audios, kwargs))

    def log_image(self, key, images, **kwargs):
        self.images.append((key, images))


def test_samples_are_wav_files_and_a_spectrogram_grid_one_class_per_column(tmp_path):
    model = _tiny_gan(grid_size=6)
    logger = _MediaLogger()
    model.write_samples(tmp_path, 5, [logger])
    clips = model.fixed_samples()
    names = [f"{i:03d}_class{i % 3}.wav" for i in range(6)]
    assert sorted(p.name for p in (tmp_path / "audio_000005").iterdir()) == names
    rate, samples = wavfile.read(tmp_path / "audio_000005" / names[4])
    assert rate == 8000 and samples.dtype == np.int16
    assert_close(torch.from_numpy(samples.astype(np.float32)) / 32767, clips[4, 0], rtol=0, atol=1 / 32767)
    width, height = Image.open(tmp_path / "spectrograms_000005.png").size
    frames, bins = 512 // 64 + 1, 256 // 2 + 1  # 32 ms windows at 8 kHz, hop 8 ms
    assert (width, height) == (3 * (frames + 2) + 2, 2 * (bins + 2) + 2)
    (key, audios, kwargs), = logger.audio
    assert key == "samples/audio" and len(audios) == 6 and kwargs["sample_rate"] == [8000] * 6
    assert logger.images[0][0] == "samples/spectrograms"
    import wandb

    wandb.Audio(audios[0], sample_rate=8000, caption=kwargs["caption"][0])  # what WandbLogger.log_audio makes
    # of each clip: it raises for anything but a 1-D float array, and without soundfile (a dependency)


def test_spectrogram_image_lights_the_band_of_a_tone():
    t = torch.arange(8000) / 8000
    image = spectrogram_images(torch.sin(2 * torch.pi * 1000 * t)[None, None], 8000)  # full scale, 1 kHz
    column = image[0, 0, :, 20]  # rows: high frequencies first, 31.25 Hz apart
    assert int(column.argmax()) == 128 - 32 and column.max() == pytest.approx(1.0, abs=0.02)
    assert column[:80].max() == -1  # more than 80 dB down far from the tone


def test_fit_writes_sounds_logs_speech_metrics_and_sample_reads_the_checkpoint(tmp_path, capsys):
    cli = SaganCLI(args=[
        "fit", *TINY_SPEECH, "--run_root", str(tmp_path / "runs"), "--tracker=csv", "--g_iters=2",
        "--trainer.limit_train_batches=2", "--trainer.check_val_every_n_epoch=1", "--trainer.limit_val_batches=1",
        "--metrics.features=probes.UntrainedSpokenDigits", "--metrics.num_samples=16",
        "--metrics.num_real=32", "--metrics.batch_size=16", "--metrics.is_splits=1",
    ])
    assert {"val/spoken_digits_is", "val/spoken_digits_fid", "val/d_real"} <= set(cli.trainer.callback_metrics)
    run = cli.run_dir
    assert sorted(p.name for p in (run / "samples").glob("spectrograms_*.png")) == [
        "spectrograms_000000.png", "spectrograms_000002.png"]  # at the start and the end
    assert len(list((run / "samples" / "audio_000002").glob("*_class*.wav"))) == 4
    ckpt = run / "checkpoints" / "last.ckpt"
    assert isinstance(load_module(ckpt), SpeechGAN)
    main(["sample", "--ckpt", str(ckpt), "--n", "3", "--label", "7", "--out", str(tmp_path / "out")])
    assert "wrote 3 WAV files" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["000_class7.wav", "001_class7.wav", "002_class7.wav"]
    make_sample_writes_wavs_of_the_label(ckpt, tmp_path / "make_out")
    with pytest.raises(SystemExit) as exit_info:  # its generator makes sounds: no image program to export
        main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "g.pt")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "is a SpeechGAN checkpoint" in err


def make_sample_writes_wavs_of_the_label(ckpt, out):
    """`make sample CKPT=... N=2 LABEL=7` as a user types it (the Makefile's own command line, this
    environment's `sagan`; `-o` keeps make from reinstalling it): two 16-bit WAVs of class 7, 8 kHz."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "sagan").is_file():
        pytest.skip(f"no sagan script beside {sys.executable}")
    venv = bin_dir.parent
    subprocess.run(
        ["make", "-o", f"{venv}/bin/sagan", "sample", f"VENV={venv}", f"CKPT={ckpt}", "N=2", "LABEL=7",
         f"ARGS=--out {out}"], cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert sorted(p.name for p in out.glob("*.wav")) == ["000_class7.wav", "001_class7.wav"]
    rate, samples = wavfile.read(out / "000_class7.wav")
    assert (rate, samples.dtype, samples.shape) == (8000, np.int16, (8192,))


def test_learning_rates_fall_linearly_to_zero_from_lr_decay_start(tmp_path):
    torch.manual_seed(0)
    run = fit_speech(tmp_path, "--g_iters=4", "--model.lr_decay_start=2", "--model.lr_g=1e-3", "--model.lr_d=3e-3")
    groups = [state["param_groups"][0]["lr"] for state in torch.load(
        run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["optimizer_states"]]
    # iterations 0, 1 at full rate; 2 at 2/2, 3 (the last step) at 1/2 of it: linear to 0 at iteration 4
    assert_close(groups, [1e-3 / 2, 3e-3 / 2], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="lr_decay_start"):
        _tiny_gan(lr_decay_start=-1)


@pytest.mark.slow  # 5 s; the fast resume checks of ImageGAN (tests/sagan/training/test_resume.py) and of its video
# subclass (tests/sagan/tasks/test_video_task.py) cover the same machinery and the same resumable loader
def test_resumed_speech_run_ends_where_the_uninterrupted_one_ends(tmp_path):
    try:
        straight = fit_speech(tmp_path / "a", "--g_iters=4", "--name=s", *recorded(tmp_path / "a"), *SHAPE)
        expected = records(tmp_path / "a" / "records.jsonl")
        first = fit_speech(tmp_path, "--g_iters=2", "--name=r", *recorded(tmp_path), *SHAPE)
        resumed = fit_speech(tmp_path, "--g_iters=4", "--name=r", "--resume=last", *recorded(tmp_path), *SHAPE)
    finally:
        torch.use_deterministic_algorithms(False)
    assert resumed == first
    assert records(tmp_path / "records.jsonl") == expected  # the same clips, noise and random draws
    assert_same_training_state(straight, resumed)


def test_several_devices_give_the_speech_gan_one_ddp_wrapper_per_network():
    trainer = SaganCLI(args=[*TINY_SPEECH, "--trainer.accelerator=cpu", "--trainer.devices=2"], run=False).trainer
    assert type(trainer.strategy) is GANDDPStrategy  # what the 2-process test below runs under


@pytest.mark.slow  # two fresh processes: ~10 s on an idle machine (the image and text GANs' DDP tests run by default)
def test_two_processes_keep_identical_speech_networks_and_read_different_clips(tmp_path):
    rank0, rank1 = fit_two_processes(tmp_path, *TINY_SPEECH, "--g_iters=2", "--model.grid_size=2")
    assert rank0["wrapped"] == ["discriminator", "generator"]
    assert_close(rank1["params"], rank0["params"], rtol=0, atol=0)
    assert_close(rank1["ema"], rank0["ema"], rtol=0, atol=0)
    clips0, clips1 = torch.cat(rank0["batches"]).flatten(1), torch.cat(rank1["batches"]).flatten(1)
    assert clips0.shape == clips1.shape == (2 * 4, 8192)
    assert not (clips0[:, None] == clips1[None]).all(dim=2).any()
