"""`sagan bench-quality --only grow`: progressive growing against not growing, at equal images seen.

For each family (SAGAN: `experiments/sagan_digits.yaml` against `sagangrow_digits.yaml`; TransGAN:
`transgan_digits.yaml` against `transgangrow_digits.yaml`, the same networks and optimizers with
`grow_from: 8`), trains both for `--grow_iters` generator iterations at the experiments' batch size (so
both see the same real images), the growing run's schedule scaled to that budget as in its experiment (a
quarter of the images at 8x8, a third at 16x16, each later stage fading in over a sixth). Then measures
digits-FID / IS / KID / intra-class FID of `--grow_samples` EMA samples at 32x32 (`harness.measure`), and
the training's time: the process's CPU time (single-threaded under OMP_NUM_THREADS=1: the stand-in for
the wall time of an idle machine) and its wall time. The floor is held-out real digits.

Prints a markdown table and writes it, with the numbers as JSON, to `<run_root>/grow_table.md` and
`grow_results.json`.

    sagan bench-quality --only grow [--grow_iters 1200] [--grow_samples 2000] [--grow_families sagan transgan]
                                    [--grow_runs plain grow]
"""

import argparse
import time
from pathlib import Path

import yaml

from sagan.benchmarks.harness import EXPERIMENTS, floor, measure, prepare, write_table
from sagan.benchmarks.harness import train as fit_experiment
from sagan.errors import UsageError

FAMILIES = {"sagan": ("sagan_digits", "sagangrow_digits"), "transgan": ("transgan_digits", "transgangrow_digits")}
FEATURES = "sagan.evaluation.features.DigitsFeatures"


def schedule(g_iters: int, batch_size: int) -> list[str]:
    """The growing run's schedule for a budget of `g_iters` iterations, as `sagan fit` arguments."""
    images = g_iters * batch_size
    return [f"--model.growing.init_args.stage_images=[{images // 4},{images // 3}]",
            f"--model.growing.init_args.fade_images={images // 6}"]


def train(experiment: str, g_iters: int, run_root: Path, extra: list[str]) -> tuple[Path, float, float]:
    """`sagan fit` of an experiment without validation; its run directory, CPU seconds and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    run_dir = fit_experiment(experiment, g_iters, run_root, None, extra=tuple(extra), name=experiment)
    return run_dir, time.process_time() - cpu, time.perf_counter() - wall


def _cells(values: dict) -> str:
    return " | ".join("-" if values.get(k) is None else f"{values[k]:.3f}" for k in ("fid", "is", "kid", "ifid"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This bench's options, on `sagan bench-quality`'s parser."""
    parser.add_argument("--grow_iters", type=int, default=1200, help="--only grow: generator iterations of every run")
    parser.add_argument("--grow_samples", type=int, default=2000, help="--only grow: samples for digits FID / IS / KID")
    parser.add_argument("--grow_families", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES),
                        help="--only grow: the model families to compare")
    parser.add_argument("--grow_runs", nargs="+", choices=["plain", "grow"], default=["plain", "grow"],
                        help="--only grow: train without growing (plain), with growing (grow), or both")


def run(args: argparse.Namespace) -> None:
    """Trains, measures and prints the growing table (see the module's docstring)."""
    if min(args.grow_iters, args.grow_samples) < 1:
        raise UsageError("--grow_iters and --grow_samples must be >= 1")
    root, device = Path(args.run_root), args.device
    header = ["| family | progressive growing | generator iterations | real images seen | FID | IS | KID | IFID "
              "| train CPU s | train wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows, records, quality, data = [], [], None, None
    for family in args.grow_families:
        for growing, experiment in zip((False, True), FAMILIES[family]):
            if ("grow" if growing else "plain") not in args.grow_runs:
                continue
            batch = yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text())["data"]["init_args"]["batch_size"]
            extra = schedule(args.grow_iters, batch) if growing else []
            run_dir, cpu, wall = train(experiment, args.grow_iters, root, extra)
            if quality is None:  # one set of real statistics for every run (the same data)
                data, quality = prepare(run_dir, FEATURES, args.grow_samples, device)
            g_iters, values = measure(quality, run_dir / "checkpoints" / "last.ckpt", device)
            images = g_iters * batch
            records.append({"family": family, "growing": growing, "g_iters": g_iters, "images": images,
                            "cpu_s": cpu, "wall_s": wall, **values})
            rows.append(f"| {family} | {'8 -> 16 -> 32' if growing else 'no'} | {g_iters} | {images} | "
                        f"{_cells(values)} | {cpu:.0f} | {wall:.0f} |")
            print(rows[-1], flush=True)
    values = floor(data, quality, device)
    records.append({"run": "real held-out (floor)", **values})
    rows.append(f"| real held-out digits (floor) | - | - | - | {_cells(values)} | - | - |")
    table = "\n".join(header + rows)
    print(f"\n{table}\n\n(digits metrics in the digits classifier's features: not comparable with Inception FIDs)")
    write_table(root, "grow_table", table, records, "grow_results.json")
