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
from collections.abc import Iterator
from functools import singledispatch
from pathlib import Path

import lightning as L
import torch
from torchvision.utils import save_image
from tqdm import tqdm

from sagan.errors import UsageError, describe_os_error
from sagan.latent import noise_chunks
from sagan.tasks.image import ImageGAN
from sagan.tasks.speech import SpeechGAN, spectrogram_images, write_wavs
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


GRID_MAX = 1024  # samples shown in the grid (the first ones); every sample is also written on its own


@torch.no_grad()
def generated_batches(
    model: L.LightningModule, n: int, label: str = "all", seed: int = 0, batch_size: int = 256,
    truncation: float | None = None, what: str = "samples",
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """(index of the first, outputs on the CPU, labels or None) for `n` samples of seeded noise, one batch at
    a time, with a progress bar on a terminal: no more than one batch and one chunk of noise in memory."""
    labels_for(label, 1, model.num_classes)  # a bad --label is refused before anything is drawn
    rng = torch.Generator().manual_seed(seed)
    bar = tqdm(total=n, desc=what, unit=" " + what, disable=None, leave=False)
    start = 0
    try:
        for z in noise_chunks(n, model.generator.z_dim, truncation, rng):
            for offset in range(0, len(z), batch_size):
                zb = z[offset : offset + batch_size]
                index = torch.arange(start, start + len(zb))
                y = None
                if model.num_classes:
                    y = index % model.num_classes if label == "all" else torch.full_like(index, int(label))
                yield start, model(zb.to(model.device), None if y is None else y.to(model.device)).cpu(), y
                start += len(zb)
                bar.update(len(zb))
    finally:
        bar.close()


def default_nrow(model: L.LightningModule, label: str, shown: int) -> int:
    """Images per grid row: one column per class for `--label all` of a conditional model, else a square."""
    return model.num_classes if (model.num_classes and label == "all") else max(int(shown**0.5), 1)


def write_samples(
    model: ImageGAN, out: Path, n: int, label: str = "all", seed: int = 0, nrow: int | None = None, batch_size: int = 256,
    truncation: float | None = None,
) -> list[Path]:
    """Writes `n` single images `000000.png`... to `out`, batch by batch, and `grid.png` of the first
    `GRID_MAX`; returns the single images' paths."""
    out.mkdir(parents=True, exist_ok=True)
    shown, paths = [], []
    for start, images, _ in generated_batches(model, n, label, seed, batch_size, truncation, "images"):
        if start < GRID_MAX:
            shown.append(images[: GRID_MAX - start])
        for i, image in enumerate(images, start):
            paths.append(out / f"{i:06d}.png")
            save_image(image.clamp(-1, 1).add(1).div(2), paths[-1])
    images = torch.cat(shown)
    nrow = nrow or default_nrow(model, label, len(images))
    if model.num_classes and label == "all" and nrow == model.num_classes:  # one class per column: name them
        labelled_columns(to_grid(images, nrow), model.class_names[: len(images)], images.shape[-1]).save(out / "grid.png")
    else:
        save_image(to_grid(images, nrow), out / "grid.png")
    return paths


def write_clips(
    model: VideoGAN, out: Path, n: int, label: str = "all", seed: int = 0, nrow: int | None = None, batch_size: int = 64,
    truncation: float | None = None,
) -> list[Path]:
    """Writes `n` single clips `000000.gif`... to `out`, batch by batch, and `grid.gif` of the first
    `GRID_MAX` (the noise of `write_samples`)."""
    out.mkdir(parents=True, exist_ok=True)
    shown, paths = [], []
    for start, clips, _ in generated_batches(model, n, label, seed, batch_size, truncation, "clips"):
        if start < GRID_MAX:
            shown.append(clips[: GRID_MAX - start])
        for i, clip in enumerate(clips, start):
            paths.append(save_gif(to_gif_frames(clip[None], 1), out / f"{i:06d}.gif", model.gif_fps))
    clips = torch.cat(shown)
    save_gif(to_gif_frames(clips, nrow or default_nrow(model, label, len(clips))), out / "grid.gif", model.gif_fps)
    return paths


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
    shown, paths = [], []  # the clips and names of `write_wav_samples`, batch by batch
    for start, clips, y in generated_batches(model, args.n, args.label, args.seed, 256, args.truncation, "clips"):
        names = [f"{start + i:03d}" + ("" if y is None else f"_class{int(y[i])}") for i in range(len(clips))]
        paths += write_wavs(clips.float(), names, out, model.sample_rate)
        if start < GRID_MAX:
            shown.append(clips[: GRID_MAX - start].float())
    clips = torch.cat(shown)
    one_per_column = model.num_classes and args.label == "all" and args.n > 1  # as `write_wav_samples` lays them out
    nrow = model.num_classes if one_per_column else max(int(len(clips) ** 0.5), 1)
    save_image(to_grid(spectrogram_images(clips, model.sample_rate), nrow), out / "spectrograms.png")
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
    if args.nrow is not None and args.nrow < 1:
        raise UsageError(f"--nrow must be >= 1, got {args.nrow}")
    model = load_module(args.ckpt, map_location=args.device)
    try:
        print(write_outputs(model, Path(args.ckpt), args))
    except OSError as error:  # --out under a file, a read-only folder, a full disk
        where = f"--out {args.out}" if args.out else "the checkpoint's folder"
        raise UsageError(f"cannot write the samples to {where}: {describe_os_error(error)}") from error
