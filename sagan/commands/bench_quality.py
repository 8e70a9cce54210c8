"""`sagan bench-quality`: sample quality and mode coverage of SAGAN on the digits, for a fixed budget.

1. Trains the default experiment (`experiments/sagan_digits.yaml`) for `--digits_iters` generator
   iterations, then measures digits-FID / IS / KID and intra-class FID of `--digits_samples` EMA samples,
   and the pixel standard deviation within a class (100 samples of each class; `sagan.evaluation.variety`).
2. Trains `experiments/sagan_stacked_digits.yaml` (three stacked digits, 1,000 modes, unconditional)
   for `--stacked_iters` iterations, and after every `--eval_every` iterations counts the modes covered
   by `--stacked_samples` samples (26,000 in the Stacked-MNIST protocol) and the KL divergence of
   their mode histogram to uniform.
3. The floor: the same metrics of held-out real images against the same training statistics.

Prints a markdown table and writes it, with the numbers as JSON, to `<run_root>/`. `--recipe` trains
both with another objective at the same budget (`RECIPES`: "hinge", the experiments' own, or "r3gan",
the relativistic pairing loss with R1 + R2 of Huang et al., 2024).

    sagan bench-quality [--digits_iters 1200] [--stacked_iters 6000] [--eval_every 1000] [--only digits|stacked]
                        [--recipe hinge|r3gan]
    sagan bench-quality --only repair ...   the image-repair table (sagan/commands/bench_repair.py)
    sagan bench-quality --only video [...]: the video GAN, see sagan/commands/bench_video.py
    sagan bench-quality --only speech [--speech_iters 6000]   (the speech GAN, commands/bench_speech.py)
    sagan bench-quality --only text [--text_run RUN]   (the text GAN's temperature sweep, commands/bench_text.py)
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

from sagan.commands.evaluate import build_data_and_metrics
from sagan.commands.sample import load_gan
from sagan.errors import UsageError
from sagan.evaluation.intra_class import intra_class_fid
from sagan.evaluation.metrics import SampleMetrics, extract
from sagan.evaluation.variety import class_pixel_std, generated_class_pixel_std
from sagan.training.checkpoints import upgrade_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # the repository's experiments/
COLUMNS = ("fid", "is", "kid", "ifid", "class_std", "modes", "kl")
# recipe -> `sagan fit` arguments on top of the experiment (same networks, optimizers and budget)
# "hinge" is the experiments' own objective (hinge; on the digits also the mode-seeking term); "r3gan" as
# experiments/r3gan_digits.yaml: the relativistic pairing loss with R1 + R2 and no mode-seeking term.
RECIPES = {
    "hinge": [],
    "r3gan": ["--model.loss=sagan.losses.RelativisticLoss", "--model.penalty=sagan.losses.R1R2Penalty",
              "--model.penalty.init_args.gamma=1.0", "--model.init_args.mode_seeking=0"],
}


def train(experiment: str, g_iters: int, run_root: Path, every: int | None, recipe: str = "hinge") -> Path:
    """Runs `sagan fit` on an experiment without validation; returns its run directory."""
    from sagan.cli import SaganCLI

    config = yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text())
    n_critic = config["model"]["init_args"].get("n_critic", 1)
    args = [
        "fit", "--config", str(EXPERIMENTS / f"{experiment}.yaml"), f"--g_iters={g_iters}", "--tracker=csv",
        "--run_root", str(run_root), "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--metrics.features=null",
        f"--checkpoint.every_n_train_steps={(every or g_iters) * (n_critic + 1)}",
        f"--name={experiment}_{recipe}", *RECIPES[recipe],
    ]
    cli = SaganCLI(args=args)
    return cli.run_dir


def prepare(run_dir: Path, features: str, num_samples: int, device: str):
    """The run's data module (validation split of `num_samples` images where it is configurable) and a
    `SampleQuality` in `features` with modes on, its real statistics loaded or computed."""
    config = upgrade_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    if "num_val" in config["data"].get("init_args", {}):
        config["data"]["init_args"]["num_val"] = num_samples  # a floor with as many images as the samples
    overrides = {"features": {"class_path": features}, "num_samples": num_samples, "modes": True, "num_real": None,
                 "kid_subset_size": min(1000, num_samples)}
    data, quality = build_data_and_metrics(config, overrides)
    quality.prepare(data, torch.device(device))
    return data, quality


def measure(quality, ckpt: Path, device: str) -> tuple[int, dict[str, float]]:
    """Generator iterations of a checkpoint and the metrics of its EMA generator's samples."""
    model = load_gan(ckpt, map_location=device)
    results = quality.evaluate(model, model.generator.z_dim, model.num_classes, model.device)
    if model.num_classes:  # within-class variety: pixel std across 100 samples of each class, mean over classes
        results["class_std"] = generated_class_pixel_std(model, model.generator.z_dim, model.num_classes).mean()
    g_iters = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] // (model.n_critic + 1)
    return g_iters, {k: float(v) for k, v in results.items()}


def floor(data, quality, device: str) -> dict[str, float]:
    """The same metrics of held-out real images (the validation split) against the training statistics."""
    if data.val_set is None:  # the training statistics came from the cache: the data was never loaded
        data.setup("fit")
    batches = (torch.stack([data.val_set[i][0] for i in range(s, min(s + 250, len(data.val_set)))])
               for s in range(0, len(data.val_set), 250))
    features, logits = extract(quality.features, batches, torch.device(device))
    m = quality.metrics
    # IS splits of about the generated splits' size (an IS over few images is biased low)
    is_splits = max(1, round(m.is_splits * len(features) / quality.num_samples))
    metrics = SampleMetrics(m.fid, m.inception_score, m.kid, m.modes, is_splits, m.kid_subsets,
                            min(m.kid_subset_size, len(features)), m.seed)
    values = {k: float(v) for k, v in metrics(features, logits, quality.real).items()} | {"samples": len(features)}
    if data.num_classes:  # the held-out images' intra-class FID and their own within-class pixel std
        images, labels = zip(*(data.val_set[i] for i in range(len(data.val_set))))
        labels = torch.as_tensor(labels)
        if "class_n" in quality.real:
            values["ifid"] = float(intra_class_fid(features, labels.to(features.device), quality.real))
        values["class_std"] = float(class_pixel_std(torch.stack(images), labels, data.num_classes).nanmean())
    return values


def _row(name: str, iters, samples, values: dict) -> str:
    cells = []
    for column in COLUMNS:
        value = values.get(column)
        cells.append("-" if value is None else (f"{int(value)}" if column == "modes" else f"{value:.3f}"))
    return f"| {name} | {iters} | {samples} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan bench-quality", description="Sample quality and mode coverage.")
    parser.add_argument("--digits_iters", type=int, default=1200, help="generator iterations on the digits")
    parser.add_argument("--stacked_iters", type=int, default=6000, help="generator iterations on stacked digits")
    parser.add_argument("--eval_every", type=int, default=1000, help="stacked-digits evaluation interval")
    parser.add_argument("--digits_samples", type=int, default=10_000, help="samples for digits FID / IS / KID")
    parser.add_argument("--stacked_samples", type=int, default=26_000, help="samples for modes and KL")
    parser.add_argument("--run_root", default="runs/bench_quality", help="where the two runs and the table go")
    parser.add_argument("--only", choices=["digits", "stacked", "repair", "video", "speech", "text"], default=None,
                        help="run one part; repair: the image-repair table (sagan/commands/bench_repair.py); "
                        "video: the moving-digits video GAN (sagan/commands/bench_video.py); speech: the "
                        "spoken-digits speech GAN (sagan/commands/bench_speech.py); text: the oracle text GAN's "
                        "quality-diversity sweep (sagan/commands/bench_text.py)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="hinge", help="training objective of both runs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    from sagan.commands import bench_speech  # it imports this module's train and prepare

    bench_speech.add_arguments(parser)
    from sagan.commands import bench_text

    bench_text.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    if args.only == "repair":  # its own options and table
        from sagan.commands.bench_repair import main as bench_repair

        return bench_repair(sys.argv[1:] if argv is None else argv)
    if args.only == "video":  # its own options (--video_iters ...): sagan/commands/bench_video.py
        from sagan.commands.bench_video import main as video

        return video(rest, args.run_root, args.device)
    if args.only == "speech":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return bench_speech.run(args)
    if args.only == "text":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return bench_text.run(args)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if min(args.digits_iters, args.stacked_iters, args.eval_every, args.digits_samples, args.stacked_samples) < 1:
        raise UsageError("iteration counts and sample counts must be >= 1")
    root = Path(args.run_root)
    header = ["| run | generator iterations | samples | FID | IS | KID | IFID | pixel std within class | modes (of K) "
              "| KL to uniform |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows, records = [], []
    start = time.perf_counter()
    plan = [
        ("sagan_digits", args.digits_iters, None, args.digits_samples, "digits", "sagan.evaluation.features.DigitsFeatures"),
        ("sagan_stacked_digits", args.stacked_iters, args.eval_every, args.stacked_samples, "stacked digits",
         "sagan.evaluation.features.StackedDigitsFeatures"),
    ]
    for experiment, iters, every, samples, label, features in plan:
        if args.only and not label.startswith(args.only):
            continue
        run_dir = train(experiment, iters, root, every, args.recipe)
        data, quality = prepare(run_dir, features, samples, args.device)
        checkpoints = sorted((run_dir / "checkpoints").glob("epoch=*.ckpt"), key=lambda p: p.stat().st_mtime)
        for ckpt in checkpoints or [run_dir / "checkpoints" / "last.ckpt"]:
            g_iters, values = measure(quality, ckpt, args.device)
            records.append({"run": label, "recipe": args.recipe, "g_iters": g_iters, "samples": samples, **values})
            rows.append(_row(f"SAGAN {args.recipe}, {label}", g_iters, samples, values))
            print(rows[-1], flush=True)
        values = floor(data, quality, args.device)
        records.append({"run": f"{label} real held-out (floor)", **values})
        rows.append(_row(f"real held-out {label} (floor)", "-", values["samples"], values))
        print(rows[-1], flush=True)
    table = "\n".join(header + rows)
    print(f"\n{table}\n\n({time.perf_counter() - start:.0f} s; digits metrics in the digits classifier's "
          "features: not comparable with Inception FIDs)")
    (root / "table.md").write_text(table + "\n")
    (root / "results.json").write_text(json.dumps(records, indent=2) + "\n")
