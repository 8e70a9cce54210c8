"""`sagan eval`: FID / IS / KID (mode coverage; for class-conditional models intra-class FID and the
within-class pixel spread) of a checkpoint's EMA generator, written as JSON beside it.

    sagan eval --ckpt runs/<name>/<run>/checkpoints/last.ckpt [--num_samples 50000] [--is_splits 10]
               [--truncation 0.7]

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
import time
from argparse import ArgumentError
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentParser

from sagan.commands.sample import load_gan
from sagan.errors import UsageError, one_line
from sagan.evaluation.intra_class import MAX_CLASS_STATISTICS_BYTES, class_statistics_bytes
from sagan.evaluation.metrics import SampleQuality
from sagan.evaluation.variety import generated_class_pixel_std, real_class_pixel_std
from sagan.latent import truncate
from sagan.training.checkpoints import check_checkpoint, upgrade_config
from sagan.training.tracking import add_to_wandb_summary
from sagan.training.trusted_classes import check_class_paths, class_paths_in


def build_data_and_metrics(config: dict, overrides: dict) -> tuple[L.LightningDataModule, SampleQuality]:
    """The run's data module and a `SampleQuality` from its `metrics` section, updated with `overrides`.

    The classes the config names are checked before anything is imported: this project's own, and those
    `overrides` name (from the command line); see `sagan.training.trusted_classes`."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data", required=True)
    parser.add_class_arguments(SampleQuality, "metrics")
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise UsageError("cannot build the evaluation from the run's config: it has no `data` section")
    metrics = {**(config.get("metrics") or {}), **overrides}
    check_class_paths({"data": config["data"], "metrics": metrics}, "the run's config", class_paths_in(overrides))
    try:
        cfg = parser.parse_object({"data": config["data"], "metrics": metrics})
        init = parser.instantiate_classes(cfg)
    except (ValueError, TypeError, KeyError, ArgumentError) as error:  # e.g. a class that is no feature extractor
        raise UsageError(f"cannot build the evaluation from the run's config: {one_line(str(error))}") from error
    return init.data, init.metrics


def evaluate_checkpoint(
    ckpt: Path, config_path: Path, num_samples: int, is_splits: int, features: str | None, device: str,
    batch_size: int, kid_subsets: int = 100, truncation: float | None = None,
) -> dict:
    """Metrics of `num_samples` EMA samples of a checkpoint, as a JSON-ready dict."""
    if not config_path.is_file():
        raise UsageError(f"no run config at {config_path}: pass --config <the run's config.yaml>")
    config = upgrade_config(yaml.safe_load(config_path.read_text()))  # runs of earlier versions too
    overrides = {
        "num_samples": num_samples, "is_splits": is_splits, "batch_size": batch_size, "kid_subsets": kid_subsets,
    }
    kid_subset_size = (config.get("metrics") or {}).get("kid_subset_size", 1000)
    overrides["kid_subset_size"] = min(kid_subset_size, num_samples)
    if features == "none":
        raise UsageError(
            "--features none: an image GAN's metrics (FID, IS, KID) are all measured in a feature space; name an "
            "extractor (e.g. sagan.evaluation.features.InceptionFeatures), or leave --features out for the run's"
        )
    if features == "data":
        overrides["features"] = "data"
    elif features:
        overrides["features"] = {"class_path": features}
    elif (config.get("metrics") or {}).get("features", "data") is None:
        overrides["features"] = "data"  # metrics were off during training: the data module's extractor
    data, quality = build_data_and_metrics(config, overrides)
    quality.resolve(data)
    if not quality.enabled:
        raise UsageError("the run's data module names no feature extractor; pass --features CLASS")
    model = load_gan(ckpt, map_location=device)
    classes = model.num_classes
    fits = class_statistics_bytes(classes, quality.features) <= MAX_CLASS_STATISTICS_BYTES
    quality.intra_class_fid = bool(classes) and fits
    start = time.perf_counter()
    quality.prepare(data, model.device)
    sample = model
    if truncation is not None:  # the same seeded noise, its entries beyond the threshold redrawn
        rng = torch.Generator().manual_seed(quality.seed + 1)  # redraws: a stream of their own
        sample = lambda z, y: model(truncate(z, truncation, rng), y)  # noqa: E731
    results = quality.evaluate(sample, model.generator.z_dim, classes, model.device)
    global_step = torch.load(ckpt, map_location="cpu", weights_only=True).get("global_step", 0)
    variety = {}
    if 0 < classes <= 100:
        generated = generated_class_pixel_std(sample, model.generator.z_dim, classes, device=model.device)
        if data.train_set is None:
            data.setup("fit")
        real = real_class_pixel_std(data.train_set, classes)
        variety = {"class_pixel_std": {"generated": [round(float(v), 4) for v in generated],
                                       "real": [round(float(v), 4) for v in real],
                                       "generated_mean": float(generated.nanmean()), "real_mean": float(real.nanmean())}}
    return {
        "checkpoint": str(ckpt),
        "generator_steps": global_step // (model.n_critic + 1),
        "num_samples": num_samples,
        "truncation": truncation,
        "features": f"{type(quality.features).__module__}.{type(quality.features).__qualname__}",
        "features_fingerprint": quality.features.fingerprint,
        "data_fingerprint": data.fingerprint,
        "real_images": int(quality.real["n"]),
        "metrics": {quality.features.metric_key(name): float(value) for name, value in results.items()},
        **variety,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan eval", description="FID / IS / KID of a checkpoint, as JSON.")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `sagan fit`")
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
    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        raise UsageError(f"checkpoint not found: {ckpt} (expected a .ckpt file written by `sagan fit`)")
    if args.num_samples < max(2, args.is_splits):
        raise UsageError(f"--num_samples must be >= 2 and >= --is_splits, got {args.num_samples}")
    if args.truncation is not None and not args.truncation > 0:
        raise UsageError(f"--truncation must be > 0, got {args.truncation}")
    check_checkpoint(ckpt)  # a truncated or foreign file is named as such, before its run's config is looked for
    config = Path(args.config) if args.config else ckpt.resolve().parent.parent / "config.yaml"
    from sagan.commands import bench_repair

    if bench_repair.is_repair_run(config):  # image repair: PSNR / SSIM / hole L1 / FID / KID of its repairs
        if args.truncation is not None:
            raise UsageError("--truncation: a repair run draws no noise to truncate")
        result = bench_repair.evaluate_checkpoint(ckpt, config, args.features, args.device, args.kid_subsets)
    else:
        result = evaluate_checkpoint(
            ckpt, config, args.num_samples, args.is_splits, args.features, args.device, args.batch_size,
            args.kid_subsets, args.truncation,
        )
    suffix = "" if args.truncation is None else f"_truncation{args.truncation:g}"
    out = Path(args.out) if args.out else ckpt.with_name(f"{ckpt.stem}_eval{suffix}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["metrics"]))
    print(f"wrote {out}")
    summary = {f"eval/{name}": value for name, value in result["metrics"].items()}
    summary.update({"eval/num_samples": result["num_samples"], "eval/g_iter": result["generator_steps"]})
    try:
        where = add_to_wandb_summary(config.parent, upgrade_config(yaml.safe_load(config.read_text())), summary)
    except Exception as error:  # e.g. an online run evaluated without a network: the JSON file is what counts
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        print(f"sagan: warning: the run's W&B summary was not updated ({reason})", file=sys.stderr)
        return
    if where:
        print(f"added to the run's W&B summary: {where}")
