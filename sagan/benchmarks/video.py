"""`sagan bench-quality --only video`: the moving-digits video GAN against the real floor and no-motion baselines.

1. Trains `experiments/videotransformer_moving_digits.yaml` for `--video_iters` generator iterations,
   with a checkpoint every `--video_eval_every`.
2. Measures each checkpoint: moving-digits FD and KD (`MovingDigitsFeatures`, not FVD) of `--video_samples`
   EMA clips against the statistics of all training clips.
3. Reference rows, each from as many held-out clips (made of the held-out digits): the clips themselves
   (the real-vs-real floor), the clips with one of their frames repeated over all frames (the digits are
   perfect but do not move), and the clips with their frames in random order (every frame perfect,
   the motion incoherent). The distance of the last two above the floor is what the metric charges for
   missing or wrong motion.

Prints a markdown table and writes it, with the numbers as JSON, to `<run_root>/video_table.md` and
`video_results.json`.

    sagan bench-quality --only video [--video_iters 1000] [--video_eval_every 250] [--video_samples 2000]
"""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from sagan.benchmarks.harness import measure, train
from sagan.evaluation.checkpoint import build_data_and_metrics
from sagan.errors import UsageError
from sagan.evaluation.metrics import SampleMetrics, extract
from sagan.training.checkpoints import upgrade_config

EXPERIMENT = "videotransformer_moving_digits"
FEATURES = "sagan.evaluation.video_features.MovingDigitsFeatures"


def prepare(run_dir: Path, num_samples: int, device: str, classifier_steps: int = 800, num_real: int | None = None):
    """The run's data module (with `num_samples` validation clips) and a `SampleQuality` in moving-digits
    features (FD and KD), its statistics of `num_real` training clips (None: all) loaded or computed."""
    config = upgrade_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    config["data"]["init_args"]["num_val"] = num_samples  # a floor with as many clips as the samples
    features = {"class_path": FEATURES, "init_args": {"train_steps": classifier_steps}}
    overrides = {"features": features, "num_samples": num_samples, "num_real": num_real,
                 "inception_score": False, "modes": False, "kid_subsets": 100, "kid_subset_size": min(1000, num_samples)}
    data, quality = build_data_and_metrics(config, overrides)
    quality.prepare(data, torch.device(device))
    return data, quality


def static(clips: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each clip [N, T, C, H, W] replaced by one of its frames (drawn at random) repeated T times."""
    pick = torch.randint(0, clips.shape[1], (clips.shape[0],), generator=rng)
    return clips[torch.arange(clips.shape[0]), pick][:, None].expand_as(clips)


def shuffled(clips: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each clip's frames in a random order of its own."""
    order = torch.stack([torch.randperm(clips.shape[1], generator=rng) for _ in range(clips.shape[0])])
    return clips[torch.arange(clips.shape[0])[:, None], order]


def reference(data, quality, device: str, change: Callable | None, seed: int = 0) -> dict[str, float]:
    """FD and KD of the held-out clips (changed by `change(clips, rng)`) against the training statistics."""
    if data.val_set is None:
        data.setup("fit")
    rng = torch.Generator().manual_seed(seed)
    n = len(data.val_set)
    batches = (torch.stack([data.val_set[i][0] for i in range(s, min(s + 250, n))]) for s in range(0, n, 250))
    if change is not None:
        batches = (change(clips, rng) for clips in batches)
    features, logits = extract(quality.features, batches, torch.device(device))
    m = quality.metrics
    metrics = SampleMetrics(m.fid, False, m.kid, False, 1, m.kid_subsets, min(m.kid_subset_size, n), m.seed)
    return {k: float(v) for k, v in metrics(features, logits, quality.real).items()} | {"samples": n}


def _row(name: str, iters, samples, values: dict) -> str:
    return f"| {name} | {iters} | {samples} | {values['fid']:.2f} | {values['kid']:.4f} |"


def main(argv: list[str], run_root: str = "runs/bench_quality", device: str = "cpu") -> None:
    parser = argparse.ArgumentParser(prog="sagan bench-quality --only video", description=__doc__.splitlines()[0])
    parser.add_argument("--video_iters", type=int, default=1000, help="generator iterations on moving digits")
    parser.add_argument("--video_eval_every", type=int, default=250, help="measure a checkpoint every this many iterations")
    parser.add_argument("--video_samples", type=int, default=2000, help="generated and held-out clips per row")
    parser.add_argument("--run_dir", default=None, help="measure this finished run instead of training one")
    parser.add_argument("--video_real", type=int, default=None, help="training clips for the statistics (default all)")
    parser.add_argument("--classifier_steps", type=int, default=800, help="training batches of the moving-digits CNN")
    args = parser.parse_args(argv)
    if min(args.video_iters, args.video_eval_every, args.classifier_steps) < 1 or min(args.video_samples,
                                                                                    args.video_real or 2) < 2:
        raise UsageError("--video_iters, --video_eval_every and --classifier_steps must be >= 1, --video_samples "
                         "and --video_real >= 2")
    root = Path(run_root)
    start, cpu = time.perf_counter(), time.process_time()
    run_dir = Path(args.run_dir) if args.run_dir else train(EXPERIMENT, args.video_iters, root, args.video_eval_every)
    trained, trained_cpu = time.perf_counter() - start, time.process_time() - cpu
    data, quality = prepare(run_dir, args.video_samples, device, args.classifier_steps, args.video_real)
    rows = ["| run | generator iterations | clips | moving-digits FD | moving-digits KD |", "|---|---|---|---|---|"]
    records = []
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch=*.ckpt"), key=lambda p: p.stat().st_mtime)
    for ckpt in checkpoints or [run_dir / "checkpoints" / "last.ckpt"]:
        g_iters, values = measure(quality, ckpt, device)
        records.append({"run": "video transformer GAN", "g_iters": g_iters, **values})
        rows.append(_row("Video transformer GAN, moving digits", g_iters, args.video_samples, values))
        print(rows[-1], flush=True)
    for name, change in (("real held-out clips (floor)", None), ("held-out clips, one frame repeated (no motion)", static),
                         ("held-out clips, frames shuffled (incoherent motion)", shuffled)):
        values = reference(data, quality, device, change)
        records.append({"run": name, **values})
        rows.append(_row(name, "-", values["samples"], values))
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(f"\n{table}\n\n({trained:.0f} s of training ({trained_cpu:.0f} s of CPU time), "
          f"{time.perf_counter() - start - trained:.0f} s of measuring; distances in the moving-digits CNN's features: "
          "not FVD)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "video_table.md").write_text(table + "\n")
    (root / "video_results.json").write_text(json.dumps(records, indent=2) + "\n")
