"""`sagan bench-quality` end to end on a budget of one generator iteration (the real budget is in the README)."""

import json

from sagan.commands import main


def test_bench_quality_prints_and_writes_the_table(tmp_path, capsys):
    main(["bench-quality", "--only", "digits", "--digits_iters", "1", "--digits_samples", "50",
          "--run_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| SAGAN hinge, digits | 1 | 50 |" in out and "| real held-out digits (floor) | - | 179 |" in out
    records = json.loads((tmp_path / "results.json").read_text())
    model, floor = records
    assert model["g_iters"] == 1 and model["samples"] == 50
    # real held-out digits are far closer to the training statistics than an untrained generator
    assert floor["fid"] < model["fid"] and floor["is"] > model["is"]
    assert floor["modes"] == 10 and floor["kl"] < 0.01  # the held-out split is stratified
    assert model["ifid"] > floor["ifid"] and 0.15 < floor["class_std"] < 0.4 and model["class_std"] >= 0
    assert (tmp_path / "table.md").read_text().startswith("| run |")
    # each score with its recipe: the same real statistics, the EMA generator's 50 samples or 179 held-out images
    recipe, floor_recipe = model["score_recipe"], floor["score_recipe"]
    assert recipe["generated_samples"] == 50 and recipe["ema"] is True and recipe["split"] == "train"
    assert floor_recipe["generated_samples"] == 179 and floor_recipe["ema"] is False
    assert recipe["real_set"] == floor_recipe["real_set"] and recipe["real_samples"] == floor_recipe["real_samples"]
    # again, with the training statistics now cached
    main(["bench-quality", "--only", "digits", "--digits_iters", "1", "--digits_samples", "50",
          "--run_root", str(tmp_path / "again"), "--recipe", "r3gan"])
    model, again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again == floor and model["recipe"] == "r3gan"
    config = next((tmp_path / "again").glob("sagan_digits_r3gan/*/config.yaml")).read_text()
    assert "RelativisticLoss" in config and "R1R2Penalty" in config
