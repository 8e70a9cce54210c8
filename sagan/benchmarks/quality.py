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
both with another objective at the same budget (`RECIPES`: "hinge", the experiments' own, "r3gan",
the relativistic pairing loss with R1 + R2 of Huang et al., 2024, or "r3gan_fd", the same with R1 + R2 by
finite difference).

    sagan bench-quality [--digits_iters 1200] [--stacked_iters 6000] [--eval_every 1000] [--only digits|stacked]
                        [--recipe hinge|r3gan|r3gan_fd]
    sagan bench-quality --only repair ...   the image-repair table (sagan/benchmarks/repair.py)
    sagan bench-quality --only video [...]: the video GAN, see sagan/benchmarks/video.py
    sagan bench-quality --only speech [--speech_iters N]      (the speech GAN, sagan/benchmarks/speech.py)
    sagan bench-quality --only grow [--grow_iters 1200]   progressive growing or not (sagan/benchmarks/growing.py)
"""

import argparse
import sys
import time
from pathlib import Path

import torch

from sagan.benchmarks import growing, repair, speech, text, video
from sagan.benchmarks.harness import COLUMNS, RECIPES, floor, measure, prepare, train, write_table
from sagan.errors import UsageError


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
    parser.add_argument("--only", choices=["digits", "stacked", "repair", "video", "speech", "text", "grow"], default=None,
                        help="run one part; repair: the image-repair table (sagan/benchmarks/repair.py); "
                        "video: the moving-digits video GAN (sagan/benchmarks/video.py); speech: the "
                        "spoken-digits speech GAN (sagan/benchmarks/speech.py); text: the oracle text GAN's "
                        "quality-diversity sweep (sagan/benchmarks/text.py); grow: progressive growing against "
                        "not growing at equal images seen (sagan/benchmarks/growing.py)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="hinge", help="training objective of both runs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    speech.add_arguments(parser)
    text.add_arguments(parser)
    growing.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    if args.only == "repair":  # its own options and table
        return repair.main(sys.argv[1:] if argv is None else argv)
    if args.only == "video":  # its own options (--video_iters ...): sagan/benchmarks/video.py
        return video.main(rest, args.run_root, args.device)
    if args.only == "grow":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return growing.run(args)
    if args.only == "speech":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return speech.run(args)
    if args.only == "text":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return text.run(args)
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
    write_table(root, "table", table, records, "results.json")
