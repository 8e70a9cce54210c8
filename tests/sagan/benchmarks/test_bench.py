import json

import pytest

from sagan.commands import main


def test_bench_prints_json_lines(capsys):
    main(["bench", "--only", "sagan_digits", "--iters", "1", "--warmup", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    assert result["bench"] == "sagan_digits" and result["iters"] == 1 and result["batch_size"] == 64
    assert result["ms_per_iter"] > 0 and result["img_per_s"] > 0 and result["peak_mem_mb"] > 0
    assert result["first_iter_s"] > 0 and result["compile_s"] == 0.0 and result["compile"] is False


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
