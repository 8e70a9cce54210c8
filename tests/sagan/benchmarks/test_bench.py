import json

import pytest
import torch
from torch.testing import assert_close

from sagan.commands import main


def test_bench_prints_json_lines(capsys):
    main(["bench", "--only", "sagan_digits", "--iters", "1", "--warmup", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    assert result["bench"] == "sagan_digits" and result["iters"] == 1 and result["batch_size"] == 64
    assert result["ms_per_iter"] > 0 and result["img_per_s"] > 0 and result["peak_mem_mb"] > 0
    assert result["first_iter_s"] > 0 and result["compile_s"] == 0.0 and result["compile"] is False
    # the experiment's own budget (experiments/sagan_digits.yaml: 1,200 g_iters of 64 images) at this speed
    assert result["budget_from"] == "sagan_digits" and result["budget_g_iters"] == 1200
    assert result["budget_images"] == 1200 * 64 and result["cpu_ms_per_iter"] > 0
    hours = torch.tensor(1200 * 64 / result["img_per_s"] / 3600)  # img_per_s and the hours are rounded
    assert_close(torch.tensor(result["time_to_budget_h"]), hours, rtol=0.01, atol=0.006)


def test_time_to_budget_is_the_budget_in_images_over_the_speed():
    from sagan.benchmarks.speed import time_to_budget

    # TransGAN CIFAR-10: 500,000 g_iters x 64 images x 4 D steps = 128M images; at 1,000 img/s: 35.56 h
    assert time_to_budget(500_000, 64, 4, 1000.0) == {
        "budget_g_iters": 500_000, "budget_images": 128_000_000, "time_to_budget_h": 35.56, "time_to_budget_days": 1.48,
    }
    assert time_to_budget(None, 64, 1, 10.0)["time_to_budget_h"] is None


def test_experiments_are_timed_against_their_own_budget():
    from sagan.benchmarks.speed import experiment_budget, image_experiments

    names = image_experiments()
    assert {"sagan_imagenet", "sagan_celeba", "transgan_cifar10", "sagan_digits"} <= set(names)
    assert not any(name.startswith(("inpaint", "restore", "video", "speech", "text")) for name in names)
    assert experiment_budget("sagan_imagenet") == ("sagan_imagenet", 1_000_000, 256)
    assert experiment_budget("transgan_cifar10_nogp") == ("transgan_cifar10", 500_000, 64)
    assert experiment_budget("sagan_64") == ("sagan_celeba", 100_000, 64)  # no experiment: the 64x64 one's


def test_bench_refuses_an_experiment_it_cannot_time(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--only", "inpaint_digits"])
    assert exit_info.value.code == 2 and "invalid choice: 'inpaint_digits'" in capsys.readouterr().err


@pytest.mark.slow  # the same benchmark code as test_bench_prints_json_lines, on the TransGAN experiment
def test_transgan_benchmark_runs(capsys):
    main(["bench", "--only", "transgan_digits", "--iters", "1", "--warmup", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    assert result["bench"] == "transgan_digits" and result["iters"] == 1 and result["ms_per_iter"] > 0


def test_loader_bench_reports_both_variants(capsys):
    main(["bench", "--only", "loader_jpeg64", "--loader_images", "130", "--loader_workers", "0", "--loader_epochs", "1"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["cache"] for line in lines] == [False, True]
    for line in lines:
        assert line["bench"] == "loader_jpeg64" and line["images"] == 129 and line["image_size"] == 64
        assert line["img_per_s"] > 0 and line["first_epoch_img_per_s"] > 0 and line["setup_s"] > 0


def test_gpu_suite_table_compares_with_eager_and_the_peer():
    from sagan.benchmarks.gpu import table

    rows = [
        {"suite": "s", "variant": "eager_fp32", "batch_size": 64, "img_per_s": 100.0, "ms_per_iter": 640.0,
         "peak_mem_mb": 10.0, "compile_s": 0.0},
        {"suite": "s", "variant": "compile_bf16", "batch_size": 64, "img_per_s": 300.0, "ms_per_iter": 213.3,
         "peak_mem_mb": 5.0, "compile_s": 40.0},
        {"suite": "s", "variant": "peer", "batch_size": 64, "img_per_s": 50.0, "ms_per_iter": 1280.0,
         "peak_mem_mb": 20.0},
        {"suite": "t", "variant": "eager_fp32", "error": "CUDA out of memory"},
    ]
    lines = table(rows).splitlines()
    assert lines[3].endswith("| 3.00x | 6.00x |") and "| 300 |" in lines[3]
    assert lines[2].endswith("| 1.00x | 2.00x |")
    assert "failed: CUDA out of memory" in lines[5]


def test_attention_benchmark_runs_the_layer_forward_and_backward():
    from sagan.benchmarks.gpu import attention_benchmark

    result = attention_benchmark(2, "32", False, None, iters=1, warmup=1, channels=16, size=16)
    assert result["bench"] == "attention_128" and result["image_size"] == 16 and result["ms_per_iter"] > 0
    assert result["layer"] == "SAGANSelfAttention2d"  # the default block of the SAGAN experiments


def test_penalty_bench_times_exact_and_finite_difference(capsys):
    main(["bench", "--only", "penalty_r3gan_digits", "--iters", "1", "--warmup", "1", "--batch_size", "8"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["approximation"] for line in lines] == ["exact", "finite_difference"]
    for line in lines:
        assert line["bench"] == "penalty_r3gan_digits" and line["batch_size"] == 8 and line["image_size"] == 32
        assert line["ms_per_step"] > 0 and line["cpu_ms_per_step"] > 0
    assert lines[1]["penalty"] == "R1R2Penalty(gamma=1.0, approximation='finite_difference', sigma=0.01)"


def test_finite_difference_benchmarks_differ_from_their_baselines_only_in_the_penalty():
    from sagan.benchmarks.harness import RECIPES
    from sagan.benchmarks.speed import BENCHMARKS

    exact, approximated = BENCHMARKS["r3gan_digits"](None)[0], BENCHMARKS["r3gan_digits_fd"](None)[0]
    assert (exact.penalty.approximation, approximated.penalty.approximation) == ("exact", "finite_difference")
    assert exact.penalty.gamma == approximated.penalty.gamma == 1.0
    assert RECIPES["r3gan_fd"][:-1] == RECIPES["r3gan"]
    assert RECIPES["r3gan_fd"][-1] == "--model.penalty.init_args.approximation=finite_difference"
