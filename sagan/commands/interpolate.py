"""`sagan interpolate`: walks through a generator's latent space, and between classes, as a PNG strip and a GIF.

    sagan interpolate --ckpt runs/sagan_digits/<run>/checkpoints/last.ckpt --seeds 0,1,2 [--steps 8]
                      [--mode slerp|lerp] [--classes 3] [--truncation 0.7] [--out DIR]
    sagan interpolate --ckpt ... --seeds 0 --classes 1,7          # one noise vector, from class 1 to class 7
    sagan interpolate --ckpt ... --seeds 0,1 --classes 1,7        # both at once

Each seed gives a noise vector (the first one `sagan sample --seed` draws); the path visits them in
order, `--steps` intervals between consecutive ones, spherically (slerp, the default) or linearly.
For conditional models each class is a one-hot class-weight vector and the path blends them linearly:
the generator mixes the two classes' embeddings and conditional-norm parameters. One seed with several
classes interpolates classes alone; several of both move together (as many seeds as classes). The
strip has one row per interval (both ends included); the GIF shows every frame in order, in a loop.
"""

import argparse
from pathlib import Path

import torch
from PIL import Image

from sagan.evaluation.checkpoint import load_gan
from sagan.errors import UsageError
from sagan.latent import class_weights, path, seed_noise
from sagan.training.sample_grid import to_grid
from sagan.visualization.render import to_pil


def integers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def interpolation(
    model, seeds: list[int], classes: list[int] | None, steps: int, mode: str, truncation: float | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """The frames [F, C, H, W] in [-1, 1] of the path through the seeds' noise and the classes."""
    if classes is not None and not model.num_classes:
        raise UsageError(f"--classes {classes}: this model is unconditional (it has no classes)")
    classes = classes if classes is not None else ([0] if model.num_classes else None)
    points = max(len(seeds), len(classes or [0]))
    if points < 2:
        raise UsageError("nothing to interpolate: give two or more --seeds or (conditional models) --classes")
    for flag, values in (("--seeds", seeds), ("--classes", classes or [0])):
        if len(values) not in (1, points):
            raise UsageError(f"{flag}: give one value or {points} (as many as the other list), got {len(values)}")
    z = path(torch.stack([seed_noise(seed, model.generator.z_dim, truncation) for seed in seeds]), steps, mode)
    try:
        y = None if classes is None else path(class_weights(classes, model.num_classes), steps, "lerp")
    except ValueError as error:
        raise UsageError(f"--classes: {error}") from error
    frames = (points - 1) * steps + 1
    z = z.expand(frames, -1) if len(z) == 1 else z
    y = y.expand(frames, -1) if y is not None and len(y) == 1 else y
    chunks = []
    with torch.no_grad():
        for start in range(0, frames, batch_size):
            yb = None if y is None else y[start : start + batch_size].float().to(model.device)
            chunks.append(model(z[start : start + batch_size].float().to(model.device), yb).cpu())
    return torch.cat(chunks)


def write(frames: torch.Tensor, steps: int, out: Path, duration: int = 100) -> tuple[Path, Path]:
    """`strip.png` (one row per interval, steps + 1 frames each) and `interpolation.gif` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [frames[i : i + steps + 1] for i in range(0, len(frames) - 1, steps)]
    Image.fromarray(
        (to_grid(torch.cat(rows), steps + 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    ).save(out / "strip.png")
    size = max(128, frames.shape[-2])  # the tiles' height
    images = [to_pil(frame, size) for frame in frames]
    images[0].save(out / "interpolation.gif", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return out / "strip.png", out / "interpolation.gif"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sagan interpolate", description="Latent and class interpolation of a GAN checkpoint: PNG strip and GIF."
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint of an image GAN written by `sagan fit`")
    parser.add_argument("--seeds", type=integers, default=[0, 1], help="noise seeds to visit in order (default 0,1)")
    parser.add_argument(
        "--classes", type=integers, default=None, help="conditional models: classes to visit in order (default 0)"
    )
    parser.add_argument("--steps", type=int, default=8, help="intervals between consecutive points (default 8)")
    parser.add_argument("--mode", choices=("slerp", "lerp"), default="slerp", help="noise interpolation (default slerp)")
    parser.add_argument("--truncation", type=float, default=None, help="redraw noise entries beyond this threshold")
    parser.add_argument("--duration", type=int, default=100, help="GIF milliseconds per frame (default 100)")
    parser.add_argument("--out", default=None, help="output folder (default <ckpt without .ckpt>_interpolation/)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.duration < 1:
        raise UsageError(f"--steps and --duration must be >= 1, got {args.steps} and {args.duration}")
    if args.truncation is not None and not args.truncation > 0:
        raise UsageError(f"--truncation must be > 0, got {args.truncation}")
    ckpt = Path(args.ckpt)
    model = load_gan(ckpt, map_location=args.device)
    frames = interpolation(model, args.seeds, args.classes, args.steps, args.mode, args.truncation)
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_interpolation")
    strip, gif = write(frames, args.steps, out, args.duration)
    print(f"wrote {strip} ({(len(frames) - 1) // args.steps} rows of {args.steps + 1}) and {gif} ({len(frames)} frames)")
