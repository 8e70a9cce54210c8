"""What every quality benchmark shares: train an experiment, prepare its data and metrics, measure its
checkpoints, measure the real-data floor, and write the table.

    run_dir = train("sagan_digits", g_iters, root, every)       # `sagan fit` without validation
    data, quality = prepare(run_dir, features, num_samples, device)
    g_iters, values = measure(quality, ckpt, device)             # the EMA generator's samples
    values = floor(data, quality, device)                        # held-out real images
    (values carry `score_recipe`: what the score is comparable by, `sagan.evaluation.recipe`)
    write_table(root, "table", table, records)                   # <root>/table.md and table's JSON
"""

import json
from pathlib import Path

import torch
import yaml

from sagan.evaluation.checkpoint import build_data_and_metrics, load_gan
from sagan.evaluation.intra_class import intra_class_fid
from sagan.evaluation.metrics import SampleMetrics, extract
from sagan.evaluation.variety import class_pixel_std, generated_class_pixel_std
from sagan.training.checkpoints import upgrade_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # the repository's experiments/
COLUMNS = ("fid", "is", "kid", "ifid", "class_std", "modes", "kl")  # the image table's metric columns
# recipe -> `sagan fit` arguments on top of the experiment (same networks, optimizers and budget)
# "hinge" is the experiments' own objective (hinge; on the digits also the mode-seeking term); "r3gan" as
# experiments/r3gan_digits.yaml: the relativistic pairing loss with R1 + R2 and no mode-seeking term.
RECIPES = {
    "hinge": [],
    "r3gan": ["--model.loss=sagan.losses.RelativisticLoss", "--model.penalty=sagan.losses.R1R2Penalty",
              "--model.penalty.init_args.gamma=1.0", "--model.init_args.mode_seeking=0"],
}
# the same with R1 + R2 by finite difference (first-order gradients only, attention on the fused kernels)
RECIPES["r3gan_fd"] = [*RECIPES["r3gan"], "--model.penalty.init_args.approximation=finite_difference"]


def experiment_g_iters(experiment: str) -> int:
    """An experiment's own budget, its `g_iters` (what `make train` trains)."""
    return int(yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text())["g_iters"])


def train(
    experiment: str, g_iters: int, run_root: Path, every: int | None, recipe: str = "hinge",
    extra: tuple[str, ...] = (), name: str | None = None,
) -> Path:
    """Runs `sagan fit` on an experiment without validation (with `extra` options, as run `name`, default
    `<experiment>_<recipe>`); returns its run directory."""
    from sagan.cli import SaganCLI

    config = yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text())
    n_critic = config["model"]["init_args"].get("n_critic", 1)
    args = [
        "fit", "--config", str(EXPERIMENTS / f"{experiment}.yaml"), f"--g_iters={g_iters}", "--tracker=csv",
        "--run_root", str(run_root), "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--metrics.features=null",
        f"--checkpoint.every_n_train_steps={(every or g_iters) * (n_critic + 1)}",
        f"--name={name or f'{experiment}_{recipe}'}", *RECIPES[recipe], *extra,
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
    return g_iters, {k: float(v) for k, v in results.items()} | {"score_recipe": quality.recipe().to_dict()}


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
    values["score_recipe"] = quality.recipe(ema=False, generated=len(features)).to_dict()  # held-out real images
    if data.num_classes:  # the held-out images' intra-class FID and their own within-class pixel std
        images, labels = zip(*(data.val_set[i] for i in range(len(data.val_set))))
        labels = torch.as_tensor(labels)
        if "class_n" in quality.real:
            values["ifid"] = float(intra_class_fid(features, labels.to(features.device), quality.real))
        values["class_std"] = float(class_pixel_std(torch.stack(images), labels, data.num_classes).nanmean())
    return values



def write_table(root: Path, name: str, table: str, records: list[dict], results: str | None = None) -> None:
    """Writes `<root>/<name>.md` (the markdown table) and the records as JSON (`results`, default
    `<name>.json`)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.md").write_text(table + "\n")
    (root / (results or f"{name}.json")).write_text(json.dumps(records, indent=2) + "\n")
