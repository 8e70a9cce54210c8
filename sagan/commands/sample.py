"""`sagan sample`: what a checkpoint's generator makes, images, clips, sounds or sentences.

    sagan sample --ckpt runs/sagan_digits/<run>/checkpoints/last.ckpt --n 64 [--label all|K] [--out DIR]
                 [--truncation 0.7]
    sagan sample --ckpt runs/textgan_oracle/<run>/checkpoints/last.ckpt --n 20 [--out FILE]

The checkpoint names its module's class (`_class_path`, saved by `sagan fit`); the module is rebuilt
from it, weights-only, and `write_outputs` (one implementation per module class, `functools.singledispatch`)
writes what that module generates: an `ImageGAN`'s EMA samples as a grid and single PNGs, a `VideoGAN`'s as
an animated GIF grid and single GIFs, a `SpeechGAN`'s as WAV files and a spectrogram grid, a `TextGAN`'s
sentences as a text file, one per line, decoded with the vocabulary saved in the checkpoint. With
`--truncation T` the noise entries beyond T are redrawn (the truncation trick, `sagan.latent`); the grid
of a conditional model's samples of every class names each column's class.
"""

import argparse
from functools import singledispatch
from pathlib import Path

import lightning as L
import torch
from torchvision.utils import save_image

from sagan.errors import UsageError, describe_os_error
from sagan.latent import noise
from sagan.tasks.image import ImageGAN
from sagan.tasks.speech import SpeechGAN, write_wav_samples
from sagan.tasks.text import TextGAN
from sagan.tasks.video import VideoGAN, save_gif, to_gif_frames
from sagan.training.checkpoints import load_module
from sagan.training.sample_grid import to_grid
from sagan.visualization.render import labelled_columns


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
    model: ImageGAN, out: Path, n: int, label: str = "all", seed: int = 0, nrow: int | None = None, batch_size: int = 256,
    truncation: float | None = None,
) -> list[Path]:
    """Writes `grid.png` and `n` single images `000000.png`... to `out`; returns the single images' paths."""
    y = labels_for(label, n, model.num_classes)
    z = noise(n, model.generator.z_dim, truncation, torch.Generator().manual_seed(seed))
    chunks = []
    for start in range(0, n, batch_size):
        zb = z[start : start + batch_size].to(model.device)
        yb = None if y is None else y[start : start + batch_size].to(model.device)
        chunks.append(model(zb, yb).cpu())
    images = torch.cat(chunks)
    out.mkdir(parents=True, exist_ok=True)
    nrow = nrow or (model.num_classes if (y is not None and label == "all") else max(int(n**0.5), 1))
    if y is not None and label == "all" and nrow == model.num_classes:  # one class per column: name them
        labelled_columns(to_grid(images, nrow), model.class_names[:n], images.shape[-1]).save(out / "grid.png")
    else:
        save_image(to_grid(images, nrow), out / "grid.png")
    paths = []
    for i, image in enumerate(images):
        paths.append(out / f"{i:06d}.png")
        save_image(image.clamp(-1, 1).add(1).div(2), paths[-1])
    return paths


@torch.no_grad()
def write_clips(
    model: VideoGAN, out: Path, n: int, label: str = "all", seed: int = 0, nrow: int | None = None, batch_size: int = 64,
    truncation: float | None = None,
) -> list[Path]:
    """Writes `grid.gif` and `n` single clips `000000.gif`... to `out` (the noise of `write_samples`)."""
    y = labels_for(label, n, model.num_classes)
    z = noise(n, model.generator.z_dim, truncation, torch.Generator().manual_seed(seed))
    clips = torch.cat([
        model(z[s : s + batch_size].to(model.device), None if y is None else y[s : s + batch_size].to(model.device)).cpu()
        for s in range(0, n, batch_size)
    ])
    out.mkdir(parents=True, exist_ok=True)
    nrow = nrow or (model.num_classes if (y is not None and label == "all") else max(int(n**0.5), 1))
    save_gif(to_gif_frames(clips, nrow), out / "grid.gif", model.gif_fps)
    return [save_gif(to_gif_frames(clip[None], 1), out / f"{i:06d}.gif", model.gif_fps) for i, clip in enumerate(clips)]


def write_sentences(model: TextGAN, out: Path, n: int, seed: int = 0) -> list[str]:
    """Writes `n` sentences drawn from the generator to the file `out`, one per line; returns them."""
    rng = torch.Generator(device=model.device).manual_seed(seed)
    sentences = model.decode(model.sample(n, generator=rng))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{sentence}\n" for sentence in sentences), encoding="utf-8")
    return sentences


@singledispatch
def write_outputs(model: L.LightningModule, ckpt: Path, args: argparse.Namespace) -> str:
    """Writes what `model` generates as `args` ask; returns the line to print. One implementation per
    module class (`@write_outputs.register`)."""
    kinds = ", ".join(f"{cls.__module__}.{cls.__qualname__}" for cls in write_outputs.registry if cls is not object)
    raise UsageError(f"{ckpt} holds a {type(model).__qualname__}; sagan sample takes checkpoints of {kinds}")


@write_outputs.register
def _(model: ImageGAN, ckpt: Path, args: argparse.Namespace) -> str:
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_samples")
    paths = write_samples(model, out, args.n, args.label, args.seed, args.nrow, truncation=args.truncation)
    return f"wrote {out / 'grid.png'} and {len(paths)} images to {out}/"


@write_outputs.register
def _(model: VideoGAN, ckpt: Path, args: argparse.Namespace) -> str:
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_samples")
    paths = write_clips(model, out, args.n, args.label, args.seed, args.nrow, truncation=args.truncation)
    return f"wrote {out / 'grid.gif'} and {len(paths)} clips (animated GIFs) to {out}/"


@write_outputs.register
def _(model: SpeechGAN, ckpt: Path, args: argparse.Namespace) -> str:
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_samples")
    labels = labels_for(args.label, args.n, model.num_classes)
    paths = write_wav_samples(model, out, args.n, labels, args.seed, truncation=args.truncation)
    return f"wrote {len(paths)} WAV files and spectrograms.png to {out}/"


@write_outputs.register
def _(model: TextGAN, ckpt: Path, args: argparse.Namespace) -> str:
    image_only = (("--label", args.label, "all"), ("--nrow", args.nrow, None), ("--truncation", args.truncation, None))
    for flag, value, default in image_only:
        if value != default:
            raise UsageError(f"{flag} {value}: {ckpt} is a text GAN checkpoint; {flag} is for image checkpoints")
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + "_samples.txt")
    if out.is_dir():
        out = out / f"{ckpt.stem}_samples.txt"
    sentences = write_sentences(model, out, args.n, args.seed)
    return f"wrote {len(sentences)} sentences to {out}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sagan sample", description="Images (GAN) or sentences (TextGAN) from a checkpoint's generator."
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `sagan fit`")
    parser.add_argument("--n", type=int, default=64, help="number of single images or sentences (default 64)")
    parser.add_argument("--label", default="all", help="images: 'all' (cycle through the classes) or one class index")
    parser.add_argument(
        "--out", default=None,
        help="images: output folder (default <ckpt without .ckpt>_samples/); sentences: output file, or a folder "
        "to put it in (default <ckpt without .ckpt>_samples.txt)",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--nrow", type=int, default=None, help="images per grid row")
    parser.add_argument(
        "--truncation", type=float, default=None,
        help="images: redraw noise entries beyond this threshold (the truncation trick, e.g. 0.7; default: none)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.truncation is not None and not args.truncation > 0:
        raise UsageError(f"--truncation must be > 0, got {args.truncation}")
    model = load_module(args.ckpt, map_location=args.device)
    try:
        print(write_outputs(model, Path(args.ckpt), args))
    except OSError as error:  # --out under a file, a read-only folder, a full disk
        where = f"--out {args.out}" if args.out else "the checkpoint's folder"
        raise UsageError(f"cannot write the samples to {where}: {describe_os_error(error)}") from error
