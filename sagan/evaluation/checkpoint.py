"""Scoring a `sagan fit` checkpoint: the loaded module's type picks what is measured (`functools.singledispatch`).

- an `ImageGAN` (and its subclasses: video, speech): FID / IS / KID of its EMA generator's samples in the
  run's feature space, intra-class FID and within-class pixel spread for conditional models;
- a `RepairGAN`: PSNR / SSIM / hole L1 / FID / KID of its repairs of the validation split's fixed masks or
  damage (`sagan.evaluation.repair_metrics`).

The data module and the metrics are rebuilt from the run's `config.yaml` (`build_data_and_metrics`), so the
numbers are in the same feature space as the run's `val/...` metrics. `sagan eval` (commands/evaluate.py)
and the benchmarks (sagan/benchmarks/) call these.
"""

import importlib
import time
from argparse import ArgumentError
from dataclasses import dataclass
from functools import singledispatch
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentParser

from sagan.errors import UsageError, one_line
from sagan.evaluation.intra_class import MAX_CLASS_STATISTICS_BYTES, class_statistics_bytes
from sagan.evaluation.metrics import SampleQuality
from sagan.evaluation.repair_metrics import RepairEvaluation, evaluate_repair
from sagan.evaluation.variety import generated_class_pixel_std, real_class_pixel_std
from sagan.latent import truncate
from sagan.tasks.image import ImageGAN
from sagan.tasks.repair import RepairGAN
from sagan.training.checkpoints import load_module, upgrade_config
from sagan.training.trusted_classes import check_class_paths, class_paths_in


@dataclass
class EvalOptions:
    """What `sagan eval` asks of a checkpoint (options a task does not use are refused by it, in one line)."""

    num_samples: int = 50_000
    is_splits: int = 10
    kid_subsets: int = 100
    features: str | None = None  # a feature extractor's class path; None: the run's; "none": no FID / KID
    batch_size: int = 250
    truncation: float | None = None
    device: str = "cpu"
    num_images: int | None = None  # repair: the first N validation images only


def load_gan(ckpt: str | Path, map_location: str = "cpu") -> ImageGAN:
    """The image GAN (or video / speech GAN) of a `sagan fit` checkpoint."""
    return load_module(ckpt, map_location, ImageGAN)


def read_run_config(config_path: Path) -> dict:
    """A run's `config.yaml`, with the class paths of earlier versions upgraded."""
    if not config_path.is_file():
        raise UsageError(f"no run config at {config_path}: pass --config <the run's config.yaml>")
    return upgrade_config(yaml.safe_load(config_path.read_text()))


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


def evaluate_checkpoint(ckpt: Path, config_path: Path, options: EvalOptions) -> dict:
    """The metrics of a checkpoint, as a JSON-ready dict; what is measured follows from its module's type."""
    config = read_run_config(config_path)
    module = load_module(ckpt, map_location=options.device)
    return evaluate(module, ckpt, config, options)


@singledispatch
def evaluate(module: L.LightningModule, ckpt: Path, config: dict, options: EvalOptions) -> dict:
    raise UsageError(f"{ckpt}: `sagan eval` cannot score a {type(module).__name__} checkpoint")


def _generator_steps(ckpt: Path, module: L.LightningModule) -> int:
    steps = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0)
    return steps // (getattr(module, "n_critic", 1) + 1)


@evaluate.register
def _(model: ImageGAN, ckpt: Path, config: dict, options: EvalOptions) -> dict:
    """FID / IS / KID (intra-class FID, within-class pixel spread) of `num_samples` EMA samples."""
    overrides = {
        "num_samples": options.num_samples, "is_splits": options.is_splits, "batch_size": options.batch_size,
        "kid_subsets": options.kid_subsets,
    }
    kid_subset_size = (config.get("metrics") or {}).get("kid_subset_size", 1000)
    overrides["kid_subset_size"] = min(kid_subset_size, options.num_samples)
    if options.features == "none":
        raise UsageError(
            "--features none: an image GAN's metrics (FID, IS, KID) are all measured in a feature space; name an "
            "extractor (e.g. sagan.evaluation.features.InceptionFeatures), or leave --features out for the run's"
        )
    if options.features == "data":
        overrides["features"] = "data"
    elif options.features:
        overrides["features"] = {"class_path": options.features}
    elif (config.get("metrics") or {}).get("features", "data") is None:
        overrides["features"] = "data"  # metrics were off during training: the data module's extractor
    data, quality = build_data_and_metrics(config, overrides)
    quality.resolve(data)
    if not quality.enabled:
        raise UsageError("the run's data module names no feature extractor; pass --features CLASS")
    classes = model.num_classes
    fits = class_statistics_bytes(classes, quality.features) <= MAX_CLASS_STATISTICS_BYTES
    quality.intra_class_fid = bool(classes) and fits
    start = time.perf_counter()
    quality.prepare(data, model.device)
    sample = model
    if options.truncation is not None:  # the same seeded noise, its entries beyond the threshold redrawn
        rng = torch.Generator().manual_seed(quality.seed + 1)  # redraws: a stream of their own
        sample = lambda z, y: model(truncate(z, options.truncation, rng), y)  # noqa: E731
    results = quality.evaluate(sample, model.generator.z_dim, classes, model.device)
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
        "generator_steps": _generator_steps(ckpt, model),
        "num_samples": options.num_samples,
        "truncation": options.truncation,
        "features": f"{type(quality.features).__module__}.{type(quality.features).__qualname__}",
        "features_fingerprint": quality.features.fingerprint,
        "data_fingerprint": data.fingerprint,
        "real_images": int(quality.real["n"]),
        "metrics": {quality.features.metric_key(name): float(value) for name, value in results.items()},
        "recipe": quality.recipe(options.truncation, ema=True).to_dict(),
        **variety,
        "seconds": round(time.perf_counter() - start, 1),
    }


@evaluate.register
def evaluate_repair_module(model: RepairGAN, ckpt: Path, config: dict, options: EvalOptions) -> dict:
    """The metrics of its repairs (`model.repair(damaged, mask)`) of the validation split's fixed masks /
    damage. Another module that repairs registers itself with `evaluate.register(Cls, evaluate_repair_module)`."""
    if options.truncation is not None:
        raise UsageError("--truncation: a repair run draws no noise to truncate")
    data = repair_data(config)
    spec = "data" if options.features in (None, "data") else None if options.features == "none" else {
        "class_path": options.features}
    evaluation = RepairEvaluation(build_features(spec), kid_subsets=options.kid_subsets, buckets=data.task == "inpaint")
    start = time.perf_counter()
    evaluation.prepare(data, torch.device(options.device))
    values = evaluate_repair(model.repair, data, evaluation, options.device, limit=options.num_images)
    extractor = evaluation.features
    scored = min(len(data.val_set), options.num_images or len(data.val_set))
    recipe = evaluation.recipe(data, scored)
    return {
        "checkpoint": str(ckpt),
        "task": data.task,
        "generator_steps": _generator_steps(ckpt, model),
        "num_samples": scored,
        "features": None if extractor is None else f"{type(extractor).__module__}.{type(extractor).__qualname__}",
        "data_fingerprint": data.fingerprint,
        "metrics": values,
        "recipe": recipe.to_dict(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def repair_data(config: dict, task: str | None = None, where: Path | str = "the run's config"):
    """The data module (and so the fixed masks and damage) of a repair run's config."""
    from datamodules.repair.damaged import RepairDataModule

    data, _ = build_data_and_metrics(config, {"features": None})
    if not isinstance(data, RepairDataModule) or task not in (None, data.task):
        raise UsageError(f"{where} is not a {task or 'repair'} run (its data is {type(data).__name__})")
    return data


def build_features(spec):
    """A feature extractor from `{"class_path": ...}`; "data" and None pass through (the data's, none)."""
    if not isinstance(spec, dict):
        return spec
    module, _, name = spec["class_path"].rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)()
    except (ImportError, AttributeError, ValueError) as error:
        raise UsageError(f"--features: cannot build {spec['class_path']} ({error})") from error
