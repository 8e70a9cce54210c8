"""What a default run leaves readable: metrics.csv beside the W&B run, curves against generator
iterations, step losses and images/s in the progress bar, the closing summary, `sagan eval` in W&B."""

import csv
import json
import struct
from pathlib import Path

import torch
import yaml
from conftest import TINY_DIGITS

from sagan.commands import main
from sagan.evaluation.features import FeatureExtractor


class TinyEvalFeatures(FeatureExtractor):
    """A fixed random projection: enough to run `sagan eval` in a second."""

    num_features, num_classes, metric_prefix = 8, 4, "tiny_"

    def __init__(self):
        super().__init__()
        self.proj = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))

    @property
    def fingerprint(self) -> str:
        return "tiny-eval-features"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [N, C, H, W] -> ([N, 8], [N, 4])
        features = torch.nn.functional.adaptive_avg_pool2d(x.float().mean(1, keepdim=True), 4).flatten(1) @ self.proj
        return features, features[:, :4]


def wandb_records(path: Path):
    """The records of an offline W&B run file (`run-<id>.wandb`): a 7-byte header, then LevelDB log blocks
    of 32 KiB whose records (crc, length, type) carry protobuf `Record`s, split across blocks if long."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_a_default_run_is_readable_without_wandb_and_plots_against_generator_iterations(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sagan.cli.run_stamp", lambda: "20250101-000000")
    taken = tmp_path / "runs" / "sagan_digits" / "20250101-000000"  # another run started in the same second
    taken.mkdir(parents=True)
    (taken / "theirs.txt").write_text("another run")
    # the experiment's budget is g_iters: 1200 (2,400 optimizer steps); the command line's max_steps wins
    main(["fit", *TINY_DIGITS, "--trainer.max_steps=4", "--run_root", str(tmp_path / "runs"),
          "--trainer.enable_progress_bar=true", "--trainer.log_every_n_steps=1"])
    out = capsys.readouterr().out
    run = taken.with_name("20250101-000000-1")
    assert [p.name for p in taken.iterdir()] == ["theirs.txt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["g_iters"] is None and config["trainer"]["max_steps"] == 4
    assert config["trainer"]["default_root_dir"] == str(run)

    # metrics.csv beside the W&B run, with the generator iteration of every row (n_critic=1: 2 steps each)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["trainer/g_iter"]) for r in rows if r["train/d_loss"]] == [1, 2]
    assert all(int(r["trainer/g_iter"]) == int(r["step"]) + 1 for r in rows if r["train/d_loss"])
    assert not (run / "hparams.yaml").exists()
    (offline,) = (run / "wandb").glob("offline-run-*")
    records = list(wandb_records(next(offline.glob("*.wandb"))))
    axes = {r.metric.glob_name: r.metric.step_metric for r in records if r.WhichOneof("record_type") == "metric"}
    assert axes["*"] == "trainer/g_iter"  # every curve plots against generator iterations
    history = [{item.nested_key[0] if item.nested_key else item.key: item.value_json for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [json.loads(h["trainer/g_iter"]) for h in history if "train/d_loss" in h] == [1, 2]

    # the progress bar showed step losses and throughput; the end says where everything is
    assert "d_loss=" in out and "g_loss=" in out and "img/s=" in out  # Lightning's bars write to stdout
    assert f"samples:      {run}/samples/grid_000002.png (and 1 earlier)" in out
    assert f"checkpoints:  {run}/checkpoints/last.ckpt" in out and f"metrics:      {run}/metrics.csv" in out
    assert f"W&B:          wandb sync {offline}" in out

    # `sagan eval` adds its numbers to the run's W&B summary (offline: a resumed offline run of the same id)
    ckpt = run / "checkpoints" / "last.ckpt"
    main(["eval", "--ckpt", str(ckpt), "--num_samples", "16", "--is_splits", "2", "--kid_subsets", "2",
          "--features", "test_tracking.TinyEvalFeatures"])
    assert "added to the run's W&B summary: wandb sync" in capsys.readouterr().out
    result = json.loads(ckpt.with_name("last_eval.json").read_text())
    later = [d for d in (run / "wandb").glob("offline-run-*") if d != offline]
    assert len(later) == 1 and later[0].name.endswith(offline.name.split("-", 3)[-1])  # same run id
    summary = {item.key or item.nested_key[0]: json.loads(item.value_json)
               for r in wandb_records(next(later[0].glob("*.wandb"))) if r.WhichOneof("record_type") == "summary"
               for item in r.summary.update}
    for name, value in result["metrics"].items():
        assert summary[f"eval/{name}"] == value
    assert summary["eval/g_iter"] == 2 and summary["eval/num_samples"] == 16
    assert summary["eval/recipe"] == result["recipe"]  # what the numbers are comparable by, beside them


def test_a_run_shorter_than_the_logging_interval_names_no_missing_metrics_file(tmp_path, capsys):
    from conftest import fit

    run = fit(tmp_path, "--g_iters=1", "--trainer.log_every_n_steps=25", "--trainer.limit_val_batches=0")
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.strip().startswith("metrics:")]
    assert not (run / "metrics.csv").exists()
    assert "none written" in line and "log_every_n_steps=25" in line


def test_the_throughput_counts_the_images_of_the_batches_over_their_time_not_start_up(monkeypatch):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import TQDMProgressBar

    import sagan.training.tracking as tracking

    for hook in ("on_train_start", "on_train_batch_end", "on_validation_end"):
        monkeypatch.setattr(TQDMProgressBar, hook, lambda *args: None)
    monkeypatch.setattr(TQDMProgressBar, "get_metrics", lambda self, trainer, module: {})
    clock = [0.0]
    monkeypatch.setattr(tracking.time, "perf_counter", lambda: clock[0])
    trainer = SimpleNamespace(training=True, world_size=1, callback_metrics={"train/d_loss": torch.tensor(1.0)})
    bar = tracking.TrainingProgressBar(every_s=1.0)
    batch = [torch.zeros(16, 1, 8, 8), torch.zeros(16)]  # a repair-like batch of 16 images
    shown = []

    def run(batches: int, seconds_each: float) -> None:
        for _ in range(batches):
            clock[0] += seconds_each
            bar.on_train_batch_end(trainer, None, None, batch, 0)
            shown.append(bar.get_metrics(trainer, None).get("img/s"))

    bar.on_train_start(trainer, None)
    run(1, 30.0)  # the first batch waits 30 s for the data workers and compilation
    run(20, 0.125)  # then 8 batches of 16 a second: 128 img/s
    assert shown[0] is None and set(shown[1:]) == {"128"}
    trainer.training = False
    bar.on_validation_end(trainer, None)  # a validation of 60 s
    clock[0] += 60.0
    trainer.training = True
    run(20, 0.25)  # 4 batches a second: 64 img/s, the validation not counted
    assert set(shown[-10:]) == {"64"}
