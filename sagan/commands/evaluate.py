"""`sagan eval`: FID / IS / KID (mode coverage; for class-conditional models intra-class FID and the
within-class pixel spread) of a checkpoint's EMA generator, written as JSON beside it.

    sagan eval --ckpt runs/<name>/<run>/checkpoints/last.ckpt [--num_samples 50000] [--is_splits 10]
               [--truncation 0.7]
    sagan eval --compare A.json B.json

Every JSON carries the score's `recipe` (`sagan.evaluation.recipe`: sample counts, the real set's
fingerprint and split, the extractor and the SHA-256 of its weights, truncation, EMA, seed, library
versions). `--compare` prints two score files side by side and exits 0 when their recipes match, else
refuses in one line (exit status 2) naming the first field that differs.

The data set and the feature extractor come from the run's `config.yaml` (`data` and `metrics`), so the
numbers are in the same feature space as the run's `val/...` metrics and reuse its cached real
statistics (a run that trained with the metrics off gets the data module's extractor); `--features`
picks another extractor (e.g. `sagan.evaluation.features.InceptionFeatures`). `--truncation T` scores
samples whose noise entries beyond T were redrawn (the truncation trick), written to
`<ckpt>_eval_truncation<T>.json` so that the plain numbers stay beside them. A run tracked with W&B also
gets the numbers in its W&B summary (`eval/<metric>`, offline unless the run logged online).

A class-conditional model also gets `<prefix>ifid`, the intra-class FID (`sagan.evaluation.intra_class`;
left out where the per-class statistics would exceed 2 GiB, e.g. 1,000 ImageNet classes in Inception
features), and, up to 100 classes, `class_pixel_std`: per class the pixel standard deviation across 100
samples, beside the same measure of 100 real images per class (`sagan.evaluation.variety`).
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from sagan.errors import UsageError
from sagan.evaluation.checkpoint import EvalOptions, evaluate_checkpoint
from sagan.evaluation.recipe import check_comparable, compare_lines, read_scores
from sagan.training.checkpoints import check_checkpoint, upgrade_config
from sagan.training.tracking import add_to_wandb_summary


def compare(a: str, b: str) -> None:
    """Prints two score files side by side; raises `UsageError` when their recipes differ."""
    first, second = read_scores(a), read_scores(b)
    print("\n".join(compare_lines(first, second, (a, b))))
    check_comparable(first, second, (a, b))
    print("comparable: the recipes match")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan eval", description="FID / IS / KID of a checkpoint, as JSON.")
    parser.add_argument("--ckpt", default=None, help="checkpoint written by `sagan fit`")
    parser.add_argument(
        "--compare", nargs=2, metavar=("A.json", "B.json"), default=None,
        help="print two score files (this command's JSON) side by side and exit 0 when their recipes match; "
        "refuse (exit 2) naming the first field that differs",
    )
    parser.add_argument("--config", default=None, help="the run's config.yaml (default: <run dir>/config.yaml)")
    parser.add_argument("--num_samples", type=int, default=50_000, help="generated images (default 50000)")
    parser.add_argument("--is_splits", type=int, default=10, help="Inception Score splits (default 10)")
    parser.add_argument("--kid_subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--features", default=None, help="feature extractor class (default: the run's)")
    parser.add_argument("--batch_size", type=int, default=250, help="images per batch (default 250)")
    parser.add_argument(
        "--truncation", type=float, default=None, help="redraw noise entries beyond this threshold (default: none)"
    )
    parser.add_argument(
        "--out", default=None,
        help="JSON file (default: <ckpt without .ckpt>_eval.json, or _eval_truncation<T>.json with --truncation)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.compare:
        if args.ckpt:
            raise UsageError("--compare reads two score files: give it without --ckpt")
        compare(*args.compare)
        return
    if not args.ckpt:
        raise UsageError("sagan eval needs --ckpt CKPT (a checkpoint) or --compare A.json B.json")
    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        raise UsageError(f"checkpoint not found: {ckpt} (expected a .ckpt file written by `sagan fit`)")
    if args.num_samples < max(2, args.is_splits):
        raise UsageError(f"--num_samples must be >= 2 and >= --is_splits, got {args.num_samples}")
    if args.truncation is not None and not args.truncation > 0:
        raise UsageError(f"--truncation must be > 0, got {args.truncation}")
    check_checkpoint(ckpt)  # a truncated or foreign file is named as such, before its run's config is looked for
    config = Path(args.config) if args.config else ckpt.resolve().parent.parent / "config.yaml"
    options = EvalOptions(args.num_samples, args.is_splits, args.kid_subsets, args.features, args.batch_size,
                          args.truncation, args.device)
    result = evaluate_checkpoint(ckpt, config, options)  # what is measured follows from the module's type
    suffix = "" if args.truncation is None else f"_truncation{args.truncation:g}"
    out = Path(args.out) if args.out else ckpt.with_name(f"{ckpt.stem}_eval{suffix}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["metrics"]))
    print(f"wrote {out}")
    summary = {f"eval/{name}": value for name, value in result["metrics"].items()}
    summary.update({"eval/num_samples": result["num_samples"], "eval/g_iter": result["generator_steps"],
                    "eval/recipe": result["recipe"]})
    try:
        where = add_to_wandb_summary(config.parent, upgrade_config(yaml.safe_load(config.read_text())), summary)
    except Exception as error:  # e.g. an online run evaluated without a network: the JSON file is what counts
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        print(f"sagan: warning: the run's W&B summary was not updated ({reason})", file=sys.stderr)
        return
    if where:
        print(f"added to the run's W&B summary: {where}")
