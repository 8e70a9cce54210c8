"""Metrics through the `sagan` command: validation logging, best-FID checkpoints, start-up errors, `sagan eval`."""

import csv
import hashlib
import json
import math

import pytest
import torch
from conftest import TINY_DIGITS, fit
from torch.testing import assert_close

from sagan.commands import main
from sagan.evaluation.features import DigitsFeatures

# validation after every 4 batches, on few samples: seconds on CPU
VALIDATE_OFTEN = [
    "--trainer.val_check_interval=4", "--trainer.check_val_every_n_epoch=null",
    "--metrics.num_samples=64", "--metrics.batch_size=32", "--metrics.kid_subset_size=32",
]


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("sagan: error")]


def test_missing_inception_weights_stop_the_run_at_start_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["fit", *TINY_DIGITS, "--run_root", str(tmp_path / "runs"), "--tracker=csv"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--metrics.features=sagan.evaluation.features.InceptionFeatures"])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1, lines
    assert "pt_inception-2015-12-05-6726825d.pth" in lines[0] and str(tmp_path / "torch" / "hub" / "checkpoints") in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing was started
    # with those metrics turned off the same run needs no weights
    main([*args, "--metrics.features=null", "--g_iters=1"])
    ckpt = next((tmp_path / "runs").rglob("last.ckpt"))
    # evaluating that run afterwards uses the extractor its data module names
    main(["eval", "--ckpt", str(ckpt), "--num_samples", "20", "--is_splits", "2"])
    assert json.loads(ckpt.with_name("last_eval.json").read_text())["features"] == "sagan.evaluation.features.DigitsFeatures"


def test_validation_logs_digits_metrics_and_a_checkpoint_keeps_the_best_fid(tmp_path):
    run = fit(
        tmp_path, "--g_iters=8", *VALIDATE_OFTEN,
        "--checkpoint.monitor=val/digits_fid", "--checkpoint.mode=min", "--checkpoint.save_top_k=1",
        "--checkpoint.every_n_train_steps=0", "--checkpoint.every_n_epochs=1", "--checkpoint.filename=best-{step}",
    )
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/digits_fid")]
    assert len(rows) == 2  # after batches 4 and 8
    for row in rows:
        for key in ("val/digits_fid", "val/digits_is", "val/digits_kid", "val/digits_ifid"):
            assert math.isfinite(float(row[key])), key
        assert 1.0 <= float(row["val/digits_is"]) <= 10.0
    # the recipe of those numbers, once beside metrics.csv (not a column per step)
    recipe = json.loads((run / "val_recipe.json").read_text())
    assert recipe["generated_samples"] == 64 and recipe["split"] == "train" and recipe["ema"] is True
    assert recipe["features"] == "sagan.evaluation.features.DigitsFeatures" and recipe["truncation"] is None
    assert recipe["features_sha256"] == hashlib.sha256(DigitsFeatures().path.read_bytes()).hexdigest()
    assert not any(key.startswith("recipe") or "sha256" in key for key in rows[0])
    best_row = min(rows, key=lambda r: float(r["val/digits_fid"]))
    best = [p for p in (run / "checkpoints").glob("best-*.ckpt")]
    assert len(best) == 1
    state = torch.load(best[0], weights_only=True)
    assert best[0].name == f"best-step={state['global_step']}.ckpt"
    callback = next(v for k, v in state["callbacks"].items() if "val/digits_fid" in k)
    assert_close(callback["best_model_score"].float(), torch.tensor(float(best_row["val/digits_fid"])))


def test_eval_writes_json_next_to_the_checkpoint(trained_run, capsys):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    main(["eval", "--ckpt", str(ckpt), "--num_samples", "64", "--is_splits", "4"])
    result = json.loads((trained_run / "checkpoints" / "last_eval.json").read_text())
    assert result["num_samples"] == 64 and result["generator_steps"] == 6 and result["real_images"] == 1618
    assert result["features"] == "sagan.evaluation.features.DigitsFeatures"
    assert set(result["metrics"]) == {
        "digits_fid", "digits_is", "digits_is_std", "digits_kid", "digits_kid_std", "digits_ifid"  # conditional: IFID
    }
    assert all(math.isfinite(v) for v in result["metrics"].values())
    spread = result["class_pixel_std"]  # 100 samples and 100 real images per class
    assert len(spread["generated"]) == len(spread["real"]) == 10 and 0.19 < spread["real_mean"] < 0.34
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == result["metrics"]
    # the same samples give the same numbers
    main(["eval", "--ckpt", str(ckpt), "--num_samples", "64", "--is_splits", "4", "--out", str(trained_run / "again.json")])
    assert json.loads((trained_run / "again.json").read_text())["metrics"] == result["metrics"]
    recipe = result["recipe"]
    assert recipe["generated_samples"] == 64 and recipe["real_samples"] == 1618 and recipe["truncation"] is None
    assert recipe["seed"] == 0 and recipe["ema"] is True and recipe["features"] == result["features"]
    capsys.readouterr()
    main(["eval", "--compare", str(trained_run / "checkpoints" / "last_eval.json"), str(trained_run / "again.json")])
    assert "comparable: the recipes match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--ckpt", "none.ckpt"], "checkpoint not found"), (["--num_samples", "1"], "--num_samples"),
        (["--features", "sagan.evaluation.features.NoSuchFeatures"], "has no attribute 'NoSuchFeatures'"),
        (["--features", "sagan.losses.HingeLoss"], "does not correspond to a subclass of FeatureExtractor"),
        (["--features", "none"], "--features none: an image GAN's metrics"),
    ],
)
def test_eval_bad_input_is_one_line(trained_run, args, expected, capsys):
    ckpt = ["--ckpt", str(trained_run / "checkpoints" / "last.ckpt")]
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", *ckpt, *args])
    assert exit_info.value.code == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and expected in lines[0], lines


def test_eval_without_run_config_says_so(trained_run, tmp_path, capsys):
    lonely = tmp_path / "a" / "b.ckpt"
    lonely.parent.mkdir()
    lonely.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes())
    with pytest.raises(SystemExit):
        main(["eval", "--ckpt", str(lonely), "--num_samples", "64"])
    assert "config.yaml" in _error_lines(capsys)[0]


def test_eval_with_truncation_scores_truncated_noise_in_its_own_file(trained_run, tmp_path, capsys):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    few = ["--num_samples", "20", "--is_splits", "2"]
    main(["eval", "--ckpt", str(ckpt), *few, "--truncation", "0.3"])
    truncated = json.loads((trained_run / "checkpoints" / "last_eval_truncation0.3.json").read_text())
    main(["eval", "--ckpt", str(ckpt), *few, "--out", str(tmp_path / "plain.json")])
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert truncated["truncation"] == 0.3 and plain["truncation"] is None
    assert all(math.isfinite(v) for v in truncated["metrics"].values())
    assert truncated["metrics"]["digits_fid"] != plain["metrics"]["digits_fid"]  # other samples
    with pytest.raises(SystemExit) as exit_info:  # not comparable: the recipe says why
        main(["eval", "--compare", str(trained_run / "checkpoints" / "last_eval_truncation0.3.json"),
              str(tmp_path / "plain.json")])
    assert exit_info.value.code == 2 and "recipes differ in truncation (0.3 in" in _error_lines(capsys)[0]


def test_eval_of_a_truncated_checkpoint_names_the_broken_file(trained_run, tmp_path, capsys):
    for folder in (tmp_path, trained_run / "checkpoints"):  # alone, and in its run beside config.yaml
        truncated = folder / "truncated.ckpt"
        truncated.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes()[:3000])
        try:
            with pytest.raises(SystemExit) as exit_info:
                main(["eval", "--ckpt", str(truncated), "--num_samples", "10"])
        finally:
            truncated.unlink()
        lines = _error_lines(capsys)
        assert exit_info.value.code == 2 and len(lines) == 1, lines
        assert f"cannot load {truncated}" in lines[0] and "not a PyTorch checkpoint file" in lines[0]


def test_a_run_config_naming_a_class_that_is_no_feature_extractor_is_one_line(trained_run, tmp_path, capsys):
    import yaml

    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    config["metrics"]["features"] = {"class_path": "sagan.losses.HingeLoss"}  # a sagan class: checked, not built
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--ckpt", str(trained_run / "checkpoints" / "last.ckpt"), "--config", str(tmp_path / "config.yaml"),
              "--num_samples", "10", "--out", str(tmp_path / "e.json")])
    lines = _error_lines(capsys)
    assert exit_info.value.code == 2 and len(lines) == 1 and "sagan.losses.HingeLoss does not correspond" in lines[0]
    assert not (tmp_path / "e.json").exists()
