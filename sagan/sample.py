"""`sagan sample`: a grid and single PNGs from a checkpoint's EMA generator.

    sagan sample --ckpt runs/sagan_digits/<run>/checkpoints/last.ckpt --n 64 [--label all|K] [--out DIR]
"""

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from sagan.callbacks import to_grid
from sagan.errors import UsageError
from sagan.module import GAN


def load_gan(ckpt: str | Path, map_location: str = "cpu") -> GAN:
    """Rebuilds the module of a `sagan fit` checkpoint from its saved config (weights-only unpickling)."""
    path = Path(ckpt)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path} (expected a .ckpt file written by `sagan fit`)")
    try:
        return GAN.load_from_checkpoint(path, map_location=map_location, weights_only=True).eval()
    except Exception as error:  # anything from unpickling to a config the classes reject
        raise UsageError(f"cannot load {path} as a sagan GAN checkpoint: {str(error).splitlines()[0]}") from error


def labels_for(label: str, n: int, num_classes: int) -> torch.Tensor | None:
    """Labels of `n` samples: `all` cycles through the classes, an integer fixes one class."""
    if not num_classes:
        if label != "all":
            raise UsageError(f"--label {label}: this model is unconditional (it has no classes)")
        return None
    if label == "all":
        return torch.arange(n) % num_classes
    if not label.isdigit() or int(label) >= num_classes:
        raise UsageError(f"--label must be 'all' or a class in 0..{num_classes - 1}, got {label!r}")
    return torch.full((n,), int(label), dtype=torch.long)


@torch.no_grad()
def write_samples(
    model: GAN, out: Path, n: int, label: str = "all", seed: int = 0, nrow: int | None = None, batch_size: int = 256
) -> list[Path]:
    """Writes `grid.png` and `n` single images `000000.png`... to `out`; returns the single images' paths."""
    y = labels_for(label, n, model.num_classes)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.generator.z_dim, generator=rng)
    chunks = []
    for start in range(0, n, batch_size):
        zb = z[start : start + batch_size].to(model.device)
        yb = None if y is None else y[start : start + batch_size].to(model.device)
        chunks.append(model(zb, yb).cpu())
    images = torch.cat(chunks)
    out.mkdir(parents=True, exist_ok=True)
    nrow = nrow or (model.num_classes if (y is not None and label == "all") else max(int(n**0.5), 1))
    save_image(to_grid(images, nrow), out / "grid.png")
    paths = []
    for i, image in enumerate(images):
        paths.append(out / f"{i:06d}.png")
        save_image(image.clamp(-1, 1).add(1).div(2), paths[-1])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan sample", description="Images from a checkpoint's EMA generator.")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `sagan fit`")
    parser.add_argument("--n", type=int, default=64, help="number of single images (default 64)")
    parser.add_argument("--label", default="all", help="'all' (cycle through the classes) or one class index")
    parser.add_argument("--out", default=None, help="output folder (default: <ckpt without .ckpt>_samples/)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--nrow", type=int, default=None, help="images per grid row")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    model = load_gan(args.ckpt, map_location=args.device)
    out = Path(args.out) if args.out else Path(args.ckpt).with_suffix("").with_name(Path(args.ckpt).stem + "_samples")
    paths = write_samples(model, out, args.n, args.label, args.seed, args.nrow)
    print(f"wrote {out / 'grid.png'} and {len(paths)} images to {out}/")
