"""`sagan bench-quality --only repair`: the repair GAN against classical repair, side by side, on the digits.

One table on the digits' validation split (179 held-out images; `RepairDataModule`'s fixed masks and
damage, the same on every machine):

- inpainting, for small (hole ratio <= 30%) and large (30-60%) masks: the GAN vs OpenCV's Telea and
  Navier-Stokes, scikit-image's biharmonic inpainting, mean fill, and holes left at 0;
- blind restoration (the "old photo" damage): the GAN vs the damaged input, a median and a bilateral filter;
- a floor: the original images themselves (FID / KID of real held-out images against the training set).

Columns: FID and KID in the data's features (the digits classifier: not comparable with Inception
numbers), PSNR, SSIM, L1 over the holes (restoration: over the pixels scratches and salt-and-pepper
overwrote), LPIPS when its weights are on disk; see `sagan/evaluation/repair_metrics.py`.

The GAN rows come from a checkpoint (`--repair_ckpt`, `--restore_ckpt`; the data and masks are then the
run's own) or are trained first with `sagan fit --config experiments/inpaint_digits.yaml` /
`restore_digits.yaml` for `--inpaint_iters` / `--restore_iters` generator iterations (default: the
experiment's budget). `--baselines_only` skips them. Writes `table.md` and `results.json` to `--run_root`.

    sagan bench-quality --only repair [--repair_ckpt CKPT] [--restore_ckpt CKPT] [--inpaint_iters N]
        [--restore_iters N] [--baselines_only] [--tasks inpaint|restore|both] [--run_root runs/bench_repair]
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from datamodules.image.digits import DigitsDataModule
from datamodules.repair.masks import BUCKETS
from datamodules.repair.damaged import RepairDataModule
from sagan.benchmarks.harness import EXPERIMENTS, train, write_table
from sagan.errors import UsageError
from sagan.evaluation.checkpoint import build_features, read_run_config, repair_data
from sagan.evaluation.repair_baselines import INPAINTING, RESTORATION
from sagan.evaluation.repair_metrics import RepairEvaluation, evaluate_repair
from sagan.training.checkpoints import load_module

EXPERIMENT = {"inpaint": "inpaint_digits", "restore": "restore_digits"}
COLUMNS = ("fid", "kid", "psnr", "ssim", "l1_hole", "lpips")
FLOOR = "original images (floor)"


def run_data(config_path: Path, task: str | None = None):
    """The data module (and so the fixed masks and damage) of a repair run, from its `config.yaml`."""
    if not config_path.is_file():
        raise UsageError(f"no run config at {config_path}: the checkpoint must lie in <run>/checkpoints/")
    return repair_data(read_run_config(config_path), task, config_path)


def gan(ckpt: Path, device: str) -> Callable:
    """The repair function of a checkpoint: its module's `repair(damaged, mask)`."""
    module = load_module(ckpt, map_location=device)
    if not callable(getattr(module, "repair", None)):
        raise UsageError(f"{ckpt} holds a {type(module).__name__}, which repairs nothing (expected a RepairGAN)")
    return module.repair


def gan_name(ckpt: Path) -> str:
    """The table's name of a checkpoint: its run's name and generator iterations."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    hparams = saved.get("hyper_parameters") if isinstance(saved.get("hyper_parameters"), dict) else {}
    iterations = saved.get("global_step", 0) // (hparams.get("n_critic", 1) + 1)
    return f"GAN ({ckpt.resolve().parent.parent.parent.name}, {iterations} G iterations)"


def measure(
    task: str, data: RepairDataModule, methods: dict[str, Callable], evaluation: RepairEvaluation, device: str,
    limit: int | None = None,
) -> list[dict]:
    """One record per method and bucket (restoration: one per method) on the validation split."""
    records = []
    tag = evaluation.features.metric_prefix if evaluation.features is not None else ""
    for method, repair in {**methods, FLOOR: None}.items():
        start = time.perf_counter()
        values = evaluate_repair(repair, data, evaluation, device, limit=limit)
        seconds = time.perf_counter() - start
        recipe = evaluation.recipe(data, int(values["images"])).to_dict()
        recipe["ema"] = method.startswith("GAN")  # a GAN's repairs are its EMA generator's (`gan_name`)
        buckets = [f"_{name}" for name in BUCKETS] if task == "inpaint" else [""]
        for suffix in buckets:
            row = {"task": task, "method": method, "masks": suffix.lstrip("_") or data.degradation.preset,
                   "images": int(values.get(f"images{suffix}", 0)), "seconds": round(seconds, 2),
                   "score_recipe": recipe}
            for column in COLUMNS:
                key = f"{tag if column in ('fid', 'kid') else ''}{column}{suffix}"
                if key in values:
                    row[column] = values[key]
            records.append(row)
    return records


def render(records: list[dict]) -> str:
    """The records as one markdown table (inpainting rows by bucket, then restoration)."""
    lines = ["| task | method | masks / damage | images | FID | KID | PSNR | SSIM | L1 (holes) | LPIPS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = {"small": 0, "large": 1}
    for r in sorted(records, key=lambda r: (r["task"] != "inpaint", order.get(r["masks"], 2))):
        cells = ["-" if r.get(c) is None else f"{r[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {r['task']} | {r['method']} | {r['masks']} | {r['images']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gan_checkpoint(task: str, args: argparse.Namespace, root: Path, notes: list[str]) -> Path | None:
    """The task's GAN checkpoint: the one given, else one trained now from its experiment (None: baselines only)."""
    option = "repair_ckpt" if task == "inpaint" else "restore_ckpt"
    ckpt = Path(getattr(args, option)) if getattr(args, option) else None
    experiment = EXPERIMENTS / f"{EXPERIMENT[task]}.yaml"
    if ckpt is None and not args.baselines_only:
        if not experiment.is_file():
            notes.append(f"no {experiment.name}: {task} rows without the GAN (pass --{option})")
            return None
        iters = getattr(args, f"{task}_iters") or yaml.safe_load(experiment.read_text())["g_iters"]
        ckpt = train(EXPERIMENT[task], iters, root, None) / "checkpoints" / "last.ckpt"
    if ckpt is not None and not ckpt.is_file():
        raise UsageError(f"checkpoint not found: {ckpt} (--{option})")
    return ckpt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan bench-quality --only repair", description="Repair GAN vs baselines.")
    parser.add_argument("--only", choices=["repair"], default="repair", help="(the bench-quality switch)")
    parser.add_argument("--repair_ckpt", default=None, help="inpainting checkpoint (default: train one first)")
    parser.add_argument("--restore_ckpt", default=None, help="restoration checkpoint (default: train one first)")
    parser.add_argument("--inpaint_iters", type=int, default=None, help="G iterations to train (default: the YAML's)")
    parser.add_argument("--restore_iters", type=int, default=None, help="G iterations to train (default: the YAML's)")
    parser.add_argument("--baselines_only", action="store_true", help="no GAN rows (nothing is trained)")
    parser.add_argument("--tasks", choices=["inpaint", "restore", "both"], default="both", help="which half")
    parser.add_argument("--features", default="data", help="FID / KID extractor class, 'data' (the data's) or 'none'")
    parser.add_argument("--kid_subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--num_images", type=int, default=None, help="first N validation images only (default: all)")
    parser.add_argument("--run_root", default="runs/bench_repair", help="where trained runs and the table go")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    for name in ("inpaint_iters", "restore_iters", "num_images", "kid_subsets"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    root = Path(args.run_root)
    features = {"data": "data", "none": None}.get(args.features, {"class_path": args.features})
    records, notes = [], []
    start = time.perf_counter()
    for task in ("inpaint", "restore"):
        if args.tasks not in (task, "both"):
            continue
        ckpt = gan_checkpoint(task, args, root, notes)
        if ckpt is not None:
            data = run_data(ckpt.resolve().parent.parent / "config.yaml", task)
        else:
            data = RepairDataModule(DigitsDataModule(batch_size=64), task=task)
        evaluation = RepairEvaluation(build_features(features), num_real=None, kid_subsets=args.kid_subsets,
                                      buckets=task == "inpaint")
        evaluation.prepare(data, torch.device(args.device))
        methods = {gan_name(ckpt): gan(ckpt, args.device)} if ckpt else {}
        methods |= INPAINTING if task == "inpaint" else RESTORATION
        for record in measure(task, data, methods, evaluation, args.device, args.num_images):
            records.append(record)
            print(render([record]).splitlines()[-1], flush=True)
    table = render(records)
    print(f"\n{table}\n\n({time.perf_counter() - start:.0f} s; FID / KID in the data's features)")
    for note in notes:
        print(f"note: {note}")
    write_table(root, "table", table, records, "results.json")

