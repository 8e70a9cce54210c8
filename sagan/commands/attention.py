"""`sagan attention`: where a checkpoint's attention layers look, as PNG panels (one per layer).

    sagan attention --ckpt runs/sagan_digits/<run>/checkpoints/last.ckpt [--points 4] [--label 3]
                    [--layer generator.attention.0 ...] [--seed 0] [--d_input real|generated] [--out DIR]
    sagan attention --ckpt runs/textgan_oracle/<run>/checkpoints/last.ckpt [--layer ...] [--seed 0]

Image GANs: the EMA generator draws one image from the seed's noise (class `--label`, else one drawn
from the seed) and the discriminator reads one held-out real image of the run's data (the same class
for a conditional model; `--d_input generated`: the generated image). Each attention layer's panel
shows `--points` query points on the image and, per point, its attention weights per head and their
mean over heads as heat maps on the image, with the layer's gamma in the title (see
`sagan.visualization.panels`). Text GANs: token-by-token heat maps of one sentence drawn from the seed,
read by the generator (teacher forced) and by the discriminator. Everything follows from the seed.
"""

import argparse
from functools import singledispatch
from pathlib import Path

import lightning as L
import torch
import yaml

from sagan.evaluation.checkpoint import build_data_and_metrics
from sagan.errors import UsageError
from sagan.tasks.image import ImageGAN
from sagan.tasks.text import TextGAN
from sagan.training.checkpoints import load_module, upgrade_config
from sagan.visualization.panels import image_gan_panels, query_points, text_gan_panels


def real_image(ckpt: Path, seed: int, label: int | None) -> tuple[torch.Tensor, int]:
    """A held-out image [C, H, W] of the run's data (its `config.yaml` beside the checkpoints folder) and
    its label: drawn from the seed, of class `label` when it is given."""
    config_path = ckpt.resolve().parent.parent / "config.yaml"
    hint = "or pass --d_input generated to show the discriminator the generated image"
    if not config_path.is_file():
        raise UsageError(f"no run config at {config_path} to load the discriminator's real image from; {hint}")
    try:
        data, _ = build_data_and_metrics(upgrade_config(yaml.safe_load(config_path.read_text())), {"features": None})
        data.setup("fit")
    except UsageError as error:
        raise UsageError(f"cannot load the run's data for the discriminator's real image ({error}); {hint}") from error
    held_out = data.val_set
    for index in torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed)).tolist():
        image, y = held_out[index]
        if label is None or int(y) == label:
            return image, int(y)
    raise UsageError(f"--label {label}: no held-out image of that class")


def save(panels: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    for name, panel in panels.items():
        panel.save(out / f"{name}.png")
    return f"wrote {len(panels)} attention panels to {out}/: " + ", ".join(f"{name}.png" for name in panels)


@singledispatch
def write_panels(model: L.LightningModule, ckpt: Path, args: argparse.Namespace) -> str:
    """Writes the attention panels of `model` as `args` ask; returns the line to print."""
    raise UsageError(f"{ckpt} holds a {type(model).__qualname__}; sagan attention takes image and text GAN checkpoints")


@write_panels.register
def _(model: ImageGAN, ckpt: Path, args: argparse.Namespace) -> str:
    rng = torch.Generator().manual_seed(args.seed)
    z = torch.randn(1, model.generator.z_dim, generator=rng)
    label = None
    if model.num_classes:
        label = int(torch.randint(model.num_classes, (1,), generator=rng)) if args.label is None else args.label
        if not 0 <= label < model.num_classes:
            raise UsageError(f"--label must be a class in 0..{model.num_classes - 1}, got {label}")
    elif args.label is not None:
        raise UsageError(f"--label {args.label}: this model is unconditional (it has no classes)")
    y = None if label is None else torch.tensor([label], device=model.device)
    if args.d_input == "real":
        real, real_label = real_image(ckpt, args.seed, label)
        real, real_y = real[None], (torch.tensor([real_label]) if model.num_classes else None)
    else:
        real, real_y = model(z.to(model.device), y), y
    try:
        panels = image_gan_panels(
            model.generator_ema, model.discriminator, z.to(model.device), y, real.to(model.device),
            None if real_y is None else real_y.to(model.device), query_points(args.points, args.seed), args.layer,
        )
    except ValueError as error:
        raise UsageError(f"--layer: {error}") from error
    gammas = "; ".join(f"{name} gamma {record:+.4f}" for name, record in layer_gammas(model).items())
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_attention")
    return save(panels, out) + (f"\n{gammas}" if gammas else "")


def layer_gammas(model: torch.nn.Module) -> dict[str, float]:
    """gamma of every gated attention layer of the EMA generator and the discriminator."""
    nets = {"generator": model.generator_ema, "discriminator": model.discriminator}
    return {
        f"{net}.{name}": float(module.gamma.detach())
        for net, network in nets.items() for name, module in network.named_modules()
        if isinstance(getattr(module, "gamma", None), torch.nn.Parameter)
    }


@write_panels.register
def _(model: TextGAN, ckpt: Path, args: argparse.Namespace) -> str:
    image_only = (("--label", args.label, None), ("--points", args.points, 4), ("--d_input", args.d_input, "real"))
    for flag, value, default in image_only:
        if value != default:
            raise UsageError(f"{flag} {value}: {ckpt} is a text GAN checkpoint; {flag} is for image GANs")
    tokens = model.sample(1, generator=torch.Generator(device=model.device).manual_seed(args.seed))
    try:
        panels = text_gan_panels(model.generator, model.discriminator, tokens, model.token_names(tokens[0]), args.layer)
    except ValueError as error:
        raise UsageError(f"--layer: {error}") from error
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_attention")
    return save(panels, out) + f"\nsentence: {model.decode(tokens)[0]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan attention", description="Attention maps of a checkpoint, as PNG panels.")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `sagan fit`")
    parser.add_argument("--points", type=int, default=4, help="image GANs: query points per panel (default 4)")
    parser.add_argument("--label", type=int, default=None, help="image GANs: class of the image (default: from the seed)")
    parser.add_argument(
        "--layer", action="append", default=None,
        help="only this layer, e.g. generator.attention.0 (repeatable; default: every attention layer)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, the real image and the query points")
    parser.add_argument(
        "--d_input", choices=("real", "generated"), default="real",
        help="image GANs: what the discriminator reads, a held-out image of the run's data (default) or the sample",
    )
    parser.add_argument("--out", default=None, help="output folder (default <ckpt without .ckpt>_attention/)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.points < 1:
        raise UsageError(f"--points must be >= 1, got {args.points}")
    model = load_module(args.ckpt, map_location=args.device)
    print(write_panels(model, Path(args.ckpt), args))
