"""`sagan bench-quality --only text`: the text GAN's quality against its diversity, on the oracle benchmark.

A lower NLL-oracle alone can be a lower temperature in disguise (Caccia et al., ICLR 2020, "Language GANs
falling short"): a generator that draws from softmax(logits / t) with t < 1 has better samples and less
diversity. So this benchmark samples the generators of one run, the maximum-likelihood one where
pre-training ended and the adversarial one at each later checkpoint (the last included), at a range of
softmax temperatures, and for each reports

- NLL-oracle: the oracle's NLL per token of `--text_samples` generated sequences (quality; lower is better),
- NLL-test: the generator's NLL per token of the held-out test sequences with its logits divided by the
  same temperature (diversity, or coverage of the real distribution; lower is better).

The GAN earns its adversarial phase only where its curve lies below the MLE model's, i.e. it reaches a
lower NLL-oracle at the same NLL-test. Without `--text_run` it first trains `experiments/textgan_oracle.yaml`
(= `make train DATA=oracle`), with a checkpoint where pre-training ends. Prints a markdown table and writes it
with the numbers as JSON (`text_table.md`, `text_results.json`) and the chart (`text_quality_diversity.png`,
or `--text_png`) under `--run_root`.
"""

import argparse
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from jsonargparse import ArgumentParser

from sagan.benchmarks.harness import write_table
from sagan.errors import UsageError
from sagan.evaluation.recipe import make_recipe, tensor_fingerprint
from sagan.training.checkpoints import load_module, upgrade_config
from sagan.visualization.line_plot import Curve, line_chart

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "textgan_oracle.yaml"
TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This bench's options, on `sagan bench-quality`'s parser."""
    parser.add_argument("--text_run", default=None, help="a finished `make train DATA=oracle` run directory "
                        "(default: train experiments/textgan_oracle.yaml first)")
    parser.add_argument("--text_temperatures", type=float, nargs="+", default=list(TEMPERATURES),
                        help="softmax temperatures of the sweep")
    parser.add_argument("--text_samples", type=int, default=1000, help="generated sequences per point")
    parser.add_argument("--text_png", default=None, help="where the chart goes (default: under --run_root)")


def train(run_root: Path) -> Path:
    """`sagan fit` of the oracle experiment, with a checkpoint at the end of pre-training; its run directory."""
    from sagan.cli import SaganCLI

    pretrain = yaml.safe_load(EXPERIMENT.read_text())["model"]["init_args"]["pretrain_steps"]
    args = ["fit", "--config", str(EXPERIMENT), "--tracker=csv", "--run_root", str(run_root),
            f"--checkpoint.every_n_train_steps={pretrain}", "--trainer.enable_progress_bar=false"]
    return SaganCLI(args=args).run_dir


def run_checkpoints(run_dir: Path) -> list[tuple[str, Path]]:
    """(name, path) of the run's checkpoint where pre-training ended ("MLE") and of every later one, by step
    ("GAN, <i> it.": after i adversarial generator iterations), the last one (last.ckpt) included."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise UsageError(f"no checkpoints/last.ckpt in {run_dir}: pass a finished `sagan fit` text run")
    hparams = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"]
    pretrain, n_critic = hparams["pretrain_steps"], hparams["n_critic"]
    steps: dict[int, Path] = {}
    for path in sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: p.name != "last.ckpt"):
        steps.setdefault(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"], path)
    if pretrain not in steps:
        raise UsageError(f"no checkpoint of {run_dir} at the end of pre-training (step {pretrain}): train with "
                         f"--checkpoint.every_n_train_steps dividing {pretrain}")
    named = [("MLE", steps[pretrain])]
    for step in sorted(s for s in steps if s > pretrain):
        named.append((f"GAN, {(step - pretrain) // (n_critic + 1)} it.", steps[step]))
    return named


def oracle_data(run_dir: Path) -> L.LightningDataModule:
    """The run's data module, set up; it must have an oracle."""
    config = upgrade_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data", required=True)
    data = parser.instantiate_classes(parser.parse_object({"data": config["data"]})).data
    if getattr(data, "oracle", None) is None:
        raise UsageError(f"{run_dir} was not trained on the oracle benchmark: the sweep needs its NLL-oracle")
    data.setup("test")
    return data


@torch.no_grad()
def sweep(generator, oracle, test: torch.Tensor, temperatures, n: int, seed: int = 0) -> list[dict[str, float]]:
    """NLL-oracle of `n` samples and NLL-test of the test sequences at each softmax temperature."""
    points = []
    logits = torch.cat([generator(test[s : s + 500]) for s in range(0, len(test), 500)])  # [M, T, V]
    for t in temperatures:
        rng = torch.Generator().manual_seed(seed)
        samples = torch.cat([generator.sample(min(500, n - s), generator=rng, softmax_temperature=t)[0]
                             for s in range(0, n, 500)])
        nll_test = F.cross_entropy((logits / t).flatten(0, 1), test.flatten()).item()
        points.append({"temperature": t, "nll_oracle": oracle.nll(samples).mean().item(), "nll_test": nll_test})
    return points


def _examples(title: str, tokens: torch.Tensor, oracle) -> str:
    """A few token sequences `[n, T]` as text lines, each with its NLL-oracle."""
    lines = [f"{title} (NLL-oracle per token, then the tokens):"]
    for row, nll in zip(tokens.tolist(), oracle.nll(tokens).tolist()):
        lines.append(f"    {nll:6.3f}  " + " ".join(map(str, row)))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    if args.text_samples < 1 or min(args.text_temperatures) <= 0:
        raise UsageError("--text_samples must be >= 1 and every temperature > 0")
    root = Path(args.run_root)
    start = time.perf_counter()
    run_dir = Path(args.text_run) if args.text_run else train(root)
    data = oracle_data(run_dir)
    test = data.test_set.tensors[0]
    records, curves = [], []
    # NLL-test over the test split, NLL-oracle over `text_samples` samples per temperature (seed 0; G has no EMA)
    recipe = make_recipe(None, data, "test", len(test), args.text_samples, seed=0, ema=False,
                         real_set=tensor_fingerprint(test)).to_dict()
    examples = [_examples("held-out oracle sequences (test split)", test[:3], data.oracle)]
    checkpoints = run_checkpoints(run_dir)
    for i, (name, ckpt) in enumerate(checkpoints):
        model = load_module(ckpt)
        if i in (0, len(checkpoints) - 1):  # the MLE model and the final GAN: a few samples at temperature 1
            tokens, _ = model.generator.sample(3, generator=torch.Generator().manual_seed(0))
            examples.append(_examples(f"{name}, samples at temperature 1", tokens, data.oracle))
        points = sweep(model.generator, data.oracle, test, args.text_temperatures, args.text_samples)
        records += [{"model": name, "checkpoint": str(ckpt), **p, "score_recipe": recipe} for p in points]
        curves.append(Curve(name, [(p["nll_test"], p["nll_oracle"], f"{p['temperature']:g}") for p in points]))
        print(f"{name}: " + ", ".join(f"t={p['temperature']:g} {p['nll_oracle']:.3f} / {p['nll_test']:.3f}"
                                      for p in points), flush=True)
    temperatures = args.text_temperatures
    rows = ["| model | " + " | ".join(f"t = {t:g}" for t in temperatures) + " |", "|---" * (len(temperatures) + 1) + "|"]
    for i, curve in enumerate(curves):
        cells = records[i * len(temperatures) : (i + 1) * len(temperatures)]
        rows.append(f"| {curve.name} | " + " | ".join(f"{r['nll_oracle']:.3f} / {r['nll_test']:.3f}" for r in cells) + " |")
    table = "\n".join(rows)
    print(f"\n{table}\n\n(NLL-oracle / NLL-test per token at each softmax temperature t; {run_dir}; "
          f"{args.text_samples} samples per point; {time.perf_counter() - start:.0f} s)")
    root.mkdir(parents=True, exist_ok=True)
    write_table(root, "text_table", table, records, "text_results.json")
    (root / "text_samples.md").write_text("\n\n".join(examples) + "\n")
    print("\n" + "\n\n".join(examples))
    png = Path(args.text_png) if args.text_png else root / "text_quality_diversity.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    chart = line_chart(curves, "Oracle benchmark: quality (NLL-oracle) against diversity (NLL-test), "
                       "labels: softmax temperature", "NLL-test (nats per token)", "NLL-oracle")
    chart.save(png)
    print(f"chart: {png}")
