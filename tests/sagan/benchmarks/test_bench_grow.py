"""`sagan bench-quality --only grow`: the growing run's schedule fits its budget, and the whole table on a
tiny budget (slow)."""

import json

import pytest

from sagan.benchmarks.growing import schedule
from sagan.commands import main
from sagan.tasks.growing import GrowthSchedule


def test_the_schedule_scales_to_the_budget_as_in_the_experiments():
    args = schedule(1200, 64)  # experiments/sagangrow_digits.yaml's budget and batch
    assert args == ["--model.growing.init_args.stage_images=[19200,25600]",
                    "--model.growing.init_args.fade_images=12800"]
    stages = GrowthSchedule(stage_images=(19200, 25600), fade_images=12800)
    assert stages.at(1200 * 64 - 64) == (2, 1.0)  # the last batch: full resolution, faded in
    assert stages.at(300 * 64) == (1, 0.0) and stages.at(700 * 64) == (2, 0.0)


def test_bad_budgets_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench-quality", "--only", "grow", "--grow_iters", "0"])
    assert exit_info.value.code == 2
    assert "--grow_iters and --grow_samples must be >= 1" in capsys.readouterr().err


@pytest.mark.slow  # four short trainings and their metrics: about a minute on 2 cores
def test_the_table_compares_growing_with_not_growing_at_equal_images(tmp_path):
    main(["bench-quality", "--only", "grow", "--grow_iters", "8", "--grow_samples", "100", "--run_root", str(tmp_path)])
    records = json.loads((tmp_path / "grow_results.json").read_text())
    runs = [r for r in records if "family" in r]
    assert [(r["family"], r["growing"]) for r in runs] == [
        ("sagan", False), ("sagan", True), ("transgan", False), ("transgan", True)
    ]
    assert {r["images"] for r in runs} == {8 * 64}
    assert all(r["fid"] > 0 and r["cpu_s"] > 0 for r in runs)
    assert "| sagan | 8 -> 16 -> 32 | 8 | 512 |" in (tmp_path / "grow_table.md").read_text()
