"""The `sagan` command end to end: experiments, run directories, resume, errors, tracking."""

import csv
import shutil
import threading
from pathlib import Path

import pytest
import torch
import yaml
from conftest import EXPERIMENTS, TINY_DIGITS, TINY_ORACLE, experiment_data_args, fit
from torch.testing import assert_close

from sagan.cli import SaganCLI
from sagan.commands import main
from sagan.evaluation.checkpoint import load_gan

EXPERIMENT_FILES = sorted(EXPERIMENTS.glob("*.yaml"))


def test_default_experiment_exists():
    assert EXPERIMENTS / "sagan_digits.yaml" in EXPERIMENT_FILES


def _small_grid(experiment: Path) -> list[str]:
    """A 4-image sample grid for GAN experiments: drawing the default 64 samples dominates a fast_dev_run."""
    model = yaml.safe_load(experiment.read_text()).get("model") or {}
    small = {"sagan.tasks.image.ImageGAN", "sagan.tasks.video.VideoGAN", "sagan.tasks.repair.RepairGAN",
             "sagan.tasks.speech.SpeechGAN"}
    return ["--model.init_args.grid_size=4"] if model.get("class_path") in small else []


@pytest.mark.parametrize("experiment", EXPERIMENT_FILES, ids=lambda p: p.stem)
def test_experiment_runs_fast_dev_run(experiment, tmp_path, monkeypatch):
    runs = []

    class Recorded(SaganCLI):
        def __init__(self, *args, **kwargs):
            runs.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("sagan.cli.SaganCLI", Recorded)
    main([
        "fit", "--config", str(experiment), "--trainer.fast_dev_run=true", "--tracker=none",
        "--run_root", str(tmp_path / "runs"), "--trainer.enable_progress_bar=false",
        *_small_grid(experiment), *experiment_data_args(experiment, tmp_path),
    ])
    (cli,) = runs
    assert cli.trainer.state.finished and cli.trainer.global_step >= 1  # it trained: optimizer steps were taken
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    model = yaml.safe_load(experiment.read_text())["model"]["class_path"]
    assert f"{type(cli.model).__module__}.{type(cli.model).__name__}" == model


def test_print_config_shows_linked_data_facts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS / "sagan_digits.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"] == "sagan.tasks.image.ImageGAN"
    assert config["data"]["init_args"]["image_size"] == 32


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("sagan: error")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.init_args.no_such_key=1"], "no_such_key"),
        (["--data.init_args.image_size=48"], "image_size must be one of"),
        (["--g_iters=0"], "g_iters"),
        (["--resume", "missing.ckpt"], "missing.ckpt"),
        (["--resume", "last"], "nothing to resume"),
        (["--model.init_args.discriminator.init_args.pack=2"], "needs an unconditional discriminator"),
        (["--data.init_args.use_labels=false", "--model.init_args.discriminator.init_args.pack=3"],
         "must be divisible by the discriminator's pack=3"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(args, expected, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS / "sagan_digits.yaml"), "--run_root", str(tmp_path), *args])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and expected in lines[0], lines
    assert not list(tmp_path.rglob("*.ckpt"))
    assert not (tmp_path / "sagan_digits").exists() or not any((tmp_path / "sagan_digits").iterdir())  # no run left


def test_missing_config_file_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(tmp_path / "nope.yaml")])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "nope.yaml" in lines[0]


def test_run_directory_holds_config_samples_checkpoints_and_metrics(trained_run):
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["g_iters"] == 6 and config["trainer"]["max_steps"] == 12
    grids = sorted(p.name for p in (trained_run / "samples").glob("grid_*.png"))
    assert grids == ["grid_000000.png", "grid_000003.png", "grid_000006.png"]
    checkpoints = {p.name for p in (trained_run / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in checkpoints and any("step=4" in name for name in checkpoints)
    header = (trained_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"} <= set(header)


def test_g_iters_counts_generator_iterations(tmp_path):
    run = fit(tmp_path, "--g_iters=3", "--model.init_args.n_critic=2", "--samples.every_n_g_steps=100")
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 9  # 3 x (2 D steps + 1 G step)


def test_resume_last_continues_the_same_run(tmp_path):
    first = fit(tmp_path, "--g_iters=2", "--name=r", "--trainer.log_every_n_steps=1")
    before = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    second = fit(tmp_path, "--g_iters=3", "--name=r", "--resume=last", "--trainer.log_every_n_steps=1")
    assert second == first
    after = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    assert before["global_step"] == 4 and after["global_step"] == 6
    # both optimizers continued from their saved state (Adam's step counters went 2 -> 3)
    for opt in after["optimizer_states"]:
        assert all(state["step"].item() == 3 for state in opt["state"].values())
    assert len(list((first / "samples").glob("grid_*.png"))) >= 2
    # each segment's metrics kept: the first one's moved aside when the resumed one wrote its first rows
    earlier = [r["trainer/g_iter"] for r in csv.DictReader((first / "metrics.0.csv").open())]
    later = [r["trainer/g_iter"] for r in csv.DictReader((first / "metrics.csv").open())]
    assert earlier and later and max(map(int, earlier)) <= 2 < min(map(int, later))


def test_checkpoint_round_trip_gives_identical_ema_samples(tmp_path):
    cli = SaganCLI(args=["fit", *TINY_DIGITS, "--g_iters=2", "--tracker=none", "--run_root", str(tmp_path)])
    ckpt = next(tmp_path.rglob("last.ckpt"))
    torch.load(ckpt, weights_only=True)  # nothing but tensors and plain containers inside
    reloaded = load_gan(ckpt)
    z, y = torch.randn(5, reloaded.generator.z_dim), torch.arange(5)
    with torch.no_grad():
        assert_close(reloaded(z, y), cli.model.cpu().eval()(z, y), rtol=0, atol=0)


def test_wandb_offline_run_without_secrets(tmp_path, monkeypatch):
    secret = "4c1f00d5ec2e7a11ab5ecdeadbeef0123456789a"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    main(["fit", *TINY_DIGITS, "--g_iters=2", "--tracker=wandb", "--run_root", str(tmp_path)])
    run_dir = next((tmp_path / "sagan_digits").iterdir())
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert list(offline[0].rglob("media/images/samples/*.png"))  # the sample grids went to W&B
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_run_that_fails_at_start_up_closes_its_wandb_run(tmp_path):
    import wandb

    with pytest.raises(SystemExit):  # fails in setup, after the logger started its W&B run
        main(["fit", *TINY_DIGITS, "--tracker=wandb", "--run_root", str(tmp_path), "--data.init_args.use_labels=false",
              "--model.init_args.discriminator.init_args.pack=3"])
    assert wandb.run is None  # else the next run in this process would log into it


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    run = fit(tmp_path, "--g_iters=2", "--trainer.precision=bf16-mixed")
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_compiled_networks_train(tmp_path):
    run = fit(tmp_path, "--g_iters=2", "--model.init_args.compile=true")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_two_wandb_runs_in_one_process_stay_apart(tmp_path):
    import wandb

    main(["fit", *TINY_DIGITS, "--g_iters=1", "--tracker=wandb", "--run_root", str(tmp_path / "a")])
    assert wandb.run is None  # the fit closed its run
    main(["fit", *TINY_DIGITS, "--g_iters=1", "--tracker=wandb", "--run_root", str(tmp_path / "b")])
    assert len(list(tmp_path.rglob("offline-run-*"))) == 2


def test_validate_writes_nothing_into_the_working_directory(trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["validate", *TINY_DIGITS, "--ckpt_path", str(trained_run / "checkpoints" / "last.ckpt")])
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- run directories
def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    from sagan.cli import reserve_run_dir

    (tmp_path / "20250101-000000-1").write_text("a file in the way")
    made = []
    start = threading.Barrier(4)

    def reserve():
        start.wait()
        made.append(reserve_run_dir(tmp_path, "20250101-000000"))

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in made) == [f"20250101-000000{s}" for s in ("", "-2", "-3", "-4")]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_a_run_root_that_is_a_file_or_read_only_is_one_line(tmp_path, capsys, monkeypatch):
    from sagan.cli import reserve_run_dir
    from sagan.errors import UsageError

    root = tmp_path / "runs"
    root.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY_DIGITS, "--run_root", str(root), "--tracker=none"])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and f"cannot create the run directory {root}/sagan_digits/" in lines[0], lines
    assert "Not a directory" in lines[0] and root.read_text() == "not a folder"
    # read-only (patched: the tests may run as root, whom file modes do not stop)
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(UsageError, match=r"cannot create the run directory .*/ro/x/stamp: Permission denied \(--run_root"):
        reserve_run_dir(tmp_path / "ro" / "x", "stamp")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([*TINY_DIGITS, "--model.init_args.generator.init_args.width=4"],
         "the architecture changed; generator.width: 2 in the checkpoint, 4 now"),
        (TINY_ORACLE, "it is a checkpoint of sagan.tasks.image.ImageGAN, and this config trains sagan.tasks.text.TextGAN"),
    ],
    ids=["changed_architecture", "another_module_class"],
)
def test_a_resume_that_cannot_continue_is_refused_and_the_run_stays_byte_identical(
    args, expected, trained_run, tmp_path, capsys
):
    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / "metrics.csv").touch()  # the file a resume used to rename first
    before = _snapshot(run)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--resume", str(run / "checkpoints" / "last.ckpt"), "--run_root", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and expected in lines[0] and "cannot resume from" in lines[0], lines
    assert _snapshot(run) == before
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--g_iters=5", "--trainer.max_steps=4"], "--g_iters and --trainer.max_steps both set the training budget"),
        (["--config", "BOTH"], "the config sets both g_iters (1200) and trainer.max_steps (7)"),
    ],
    ids=["both_on_the_command_line", "both_in_the_config"],
)
def test_two_budgets_are_refused_together(args, expected, tmp_path, capsys):
    both = tmp_path / "both.yaml"
    both.write_text("trainer:\n  max_steps: 7\n")
    args = [str(both) if a == "BOTH" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS / "sagan_digits.yaml"), *args, "--run_root", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and expected in lines[0], lines


def test_sagan_help_lists_every_verb(capsys):
    from sagan.commands import LIGHTNING_VERBS, VERBS

    main(["--help"])
    out = capsys.readouterr().out
    for verb in [*LIGHTNING_VERBS, *VERBS]:
        assert any(line.split()[:1] == [verb] and len(line.split()) > 2 for line in out.splitlines()), verb
    with pytest.raises(SystemExit) as exit_info:  # no verb: the same list, on stderr, and status 2
        main([])
    assert exit_info.value.code == 2 and "bench-quality" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["fit", "validate", "test", "predict", "sample", "eval", "attention", "interpolate",
                                  "export", "repair", "bench", "bench-quality", "bench-gpu"])
def test_every_verb_has_its_help(verb, capsys):
    from sagan.commands import LIGHTNING_VERBS, VERBS

    assert verb in LIGHTNING_VERBS or verb in VERBS
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.lower().startswith("usage:") and "--" in out
