import json

from sagan.commands import main


def test_bench_prints_json_lines(capsys):
    main(["bench", "--only", "sagan_digits", "--iters", "1", "--warmup", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    assert result["bench"] == "sagan_digits" and result["iters"] == 1 and result["batch_size"] == 64
    assert result["ms_per_iter"] > 0 and result["img_per_s"] > 0 and result["peak_mem_mb"] > 0


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
