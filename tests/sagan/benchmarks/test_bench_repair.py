"""`sagan bench-quality --only repair` on a tiny setting: baselines, a stand-in model, the table."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from datamodules.image.digits import DigitsDataModule
from datamodules.repair.damaged import RepairDataModule
from sagan.commands import main
from sagan.evaluation import checkpoint
from sagan.benchmarks.repair import FLOOR, measure, render
from sagan.evaluation.repair_metrics import RepairEvaluation, composite, repair_metrics


def _background(damaged: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """A stand-in "model": paints the digits' background (-1) everywhere; compositing keeps the rest."""
    return torch.full_like(damaged, -1.0)


def test_measure_scores_a_model_and_the_baselines_per_bucket():
    data = RepairDataModule(DigitsDataModule(batch_size=8), task="inpaint")
    evaluation = RepairEvaluation(None, buckets=True)
    from sagan.evaluation.repair_baselines import INPAINTING

    records = measure("inpaint", data, {"stand-in": _background, **INPAINTING}, evaluation, "cpu", limit=16)
    by = {(r["method"], r["masks"]): r for r in records}
    assert len(records) == 2 * (len(INPAINTING) + 2) and by[("stand-in", "small")]["images"] == 8
    for bucket in ("small", "large"):
        floor, zero = by[(FLOOR, bucket)], by[("holes left at 0", bucket)]
        assert floor["psnr"] == 100.0 and floor["ssim"] == pytest.approx(1.0) and floor["l1_hole"] == 0.0
        assert by[("biharmonic (scikit-image)", bucket)]["ssim"] > zero["ssim"]
    # the stand-in's rows are its composited output scored image by image, bucket by bucket
    damaged, mask, clean, _ = (torch.stack(t) for t in zip(*(data.val_repair[i] for i in range(16))))
    expected = repair_metrics(composite(damaged, _background(damaged, mask), mask), clean, mask, prefix="")
    for bucket in ("small", "large"):
        for name in ("psnr", "ssim", "l1_hole"):
            assert by[("stand-in", bucket)][name] == pytest.approx(float(expected[f"{name}_{bucket}"]), rel=1e-5)
    lines = render(records).splitlines()
    assert lines[0].startswith("| task | method |") and len(lines) == 2 + len(records)
    assert lines[2].startswith("| inpaint | stand-in | small | 8 | - | - |")  # no extractor: no FID / KID


def test_bench_quality_only_repair_writes_one_table(tmp_path, capsys):
    main(["bench-quality", "--only", "repair", "--baselines_only", "--features", "none", "--num_images", "6",
          "--run_root", str(tmp_path)])
    records = json.loads((tmp_path / "results.json").read_text())
    assert {r["task"] for r in records} == {"inpaint", "restore"}
    restore = {r["method"]: r for r in records if r["task"] == "restore"}
    assert set(restore) == {"damaged input", "median 3x3", "bilateral", FLOOR} and restore[FLOOR]["images"] == 6
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == len(records) + 2 and "| restore | median 3x3 | old_photo | 6 |" in table
    assert table in capsys.readouterr().out


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        from sagan.commands import main as sagan

        sagan(["bench-quality", "--only", "repair", "--repair_ckpt", str(tmp_path / "nope.ckpt"), "--tasks", "inpaint",
               "--run_root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "nope.ckpt" in capsys.readouterr().err


class StandIn(L.LightningModule):
    """A stand-in repair module in a real `sagan fit`-style checkpoint: paints the background."""

    def __init__(self, value: float = -1.0):
        super().__init__()
        self.save_hyperparameters()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def repair(self, damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.full_like(damaged, float(self.value))


class ScoredStandIn(StandIn):
    """The stand-in, scored by `sagan eval` as a `RepairGAN` is (how a new repair task plugs in)."""


checkpoint.evaluate.register(ScoredStandIn, checkpoint.evaluate_repair_module)


@pytest.fixture(autouse=True)
def _trust_the_stand_ins(monkeypatch):
    """The stand-in modules are no classes of sagan's: the user names them, as they would classes of their own."""
    monkeypatch.setenv("SAGAN_TRUSTED_CLASSES", f"{__name__}.StandIn,{__name__}.ScoredStandIn")


def _stand_in_run(tmp_path, name: str = "ScoredStandIn") -> Path:
    """A run directory like `sagan fit` writes, with the stand-in module's checkpoint; returns the checkpoint."""
    run = tmp_path / "stand_in" / "20260101-000000"  # <run_root>/<name>/<timestamp>/
    (run / "checkpoints").mkdir(parents=True)
    data = {"class_path": "datamodules.repair.damaged.RepairDataModule", "init_args": {
        "data": {"class_path": "datamodules.image.digits.DigitsDataModule", "init_args": {"batch_size": 8}}, "task": "inpaint"}}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": data, "metrics": {"features": None}}))
    torch.save({
        "state_dict": {"value": torch.tensor(-1.0)}, "pytorch-lightning_version": L.__version__, "global_step": 12,
        "hyper_parameters": {"value": -1.0, "_class_path": f"{__name__}.{name}",
                             "_instantiator": "lightning.pytorch.cli.instantiate_module"},
    }, run / "checkpoints" / "last.ckpt")
    return run / "checkpoints" / "last.ckpt"


def test_sagan_eval_refuses_a_module_it_cannot_score(tmp_path, capsys):
    ckpt = _stand_in_run(tmp_path, "StandIn")  # what `sagan eval` measures follows from the module's type
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--ckpt", str(ckpt), "--features", "none"])
    assert exit_info.value.code == 2 and "cannot score a StandIn checkpoint" in capsys.readouterr().err


def test_sagan_eval_scores_a_repair_checkpoint(tmp_path, capsys):
    ckpt = _stand_in_run(tmp_path)
    main(["eval", "--ckpt", str(ckpt), "--features", "none"])
    result = json.loads(ckpt.with_name("last_eval.json").read_text())
    assert result["task"] == "inpaint" and result["metrics"]["images"] == 179
    assert result["metrics"]["images_small"] + result["metrics"]["images_large"] == 179
    assert 0 < result["metrics"]["l1_hole_large"] < 1 and "psnr_small" in capsys.readouterr().out


def test_the_bench_scores_a_checkpoint_beside_the_baselines(tmp_path):
    ckpt = _stand_in_run(tmp_path)
    main(["bench-quality", "--only", "repair", "--repair_ckpt", str(ckpt), "--tasks", "inpaint", "--features", "none",
          "--num_images", "4", "--run_root", str(tmp_path / "bench")])
    records = json.loads((tmp_path / "bench" / "results.json").read_text())
    gan = [r for r in records if r["method"] == "GAN (stand_in, 6 G iterations)"]  # 12 steps of 1 D + 1 G
    assert [r["masks"] for r in gan] == ["small", "large"] and all(r["images"] == 2 for r in gan)
    assert all(r["score_recipe"]["ema"] == r["method"].startswith("GAN") for r in records)  # baselines: no EMA
    assert {r["score_recipe"]["generated_samples"] for r in records} == {4} and gan[0]["score_recipe"]["split"] == "val"
