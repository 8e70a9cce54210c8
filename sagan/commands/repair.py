"""`sagan repair`: repair your own images with a repair checkpoint, or damage clean ones for demos.

    sagan repair --ckpt CKPT --image photo.png --mask holes.png --out repaired.png   inpainting
    sagan repair --ckpt CKPT --image old.png --out restored.png                      blind restoration
    sagan repair --ckpt CKPT --image DIR --mask MASK_DIR --out OUT_DIR              a folder (masks by name)
    sagan repair --image clean.png --damage strokes --seed 3 --out damaged.png       + damaged_mask.png
    sagan repair --image CLEAN_DIR --damage strokes --out DIR                        + DIR/masks/<name>.png

- Mask polarity: a mask pixel that is nonzero (in its grayscale version) is a hole; `--invert-mask` makes
  the zero pixels the holes (for masks that are white where the image is valid).
- Size and aspect ratio: any. `--size fit` (inpainting's default) scales the image so that its short side is
  the training size, both sides rounded to a multiple of the network's stride, repairs it there and scales
  the repair back; the mask is scaled so that every pixel a hole touches stays a hole. `--size native`
  (restoration's default) runs at the image's own size, padded (edge pixels repeated) to a multiple of
  the stride and cropped back. The output always has the input's size.
- Images are read as the data loaders read them (`datamodules.decode.to_channels`): 16-bit and 32-bit
  integer images scaled from 0-65535 to 0-255, transparency (RGBA, LA, a palette's transparent index)
  composited over white, and colour turned gray for a 1-channel model. A line says so when the output
  loses something of the input: colour given to a gray model, or more than 8 bits per sample.
- Known pixels are kept exactly, in the output's own terms: the repair is pasted into the holes of the
  8-bit image as read above, so outside the mask the written PNG (L for 1 channel, RGB for 3) equals the
  input as the data loaders see it; bit for bit the input's own pixels for 8-bit gray or RGB files.
- `--out` names a file for one image, or a folder (it exists, or ends in `/`); a folder of images is
  written as `<out>/<name>.png`, and two images of one name (`x.png`, `x.jpg`) are refused.
- Bad input (a missing or unreadable file, a mask of another size, a mask that is all hole, a checkpoint
  that is not a repair GAN's) ends in one line and exit status 2, before anything is written. A mask
  with no hole is not an error: there is nothing to repair, the image is copied, and a line says so.
  Files are written to a temporary name and renamed, so no output is ever half-written.
"""

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules.image.decode import to_channels
from sagan.errors import UsageError, image_hw
from sagan.tasks.repair import RepairGAN
from sagan.training.checkpoints import load_module

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


# ------------------------------------------------------------------------------------------ files
def read_image(path: Path, mode: str | None = None, notes: list[str] | None = None) -> np.ndarray:
    """[H, W, C] uint8 of an image file in `mode` ("L" or "RGB"; None: gray files stay gray, anything else
    RGB), decoded as the data loaders decode it (`to_channels`). What the reading drops (colour, bits) is
    appended to `notes` as one line each."""
    if not path.is_file():
        raise UsageError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            gray = image.mode in ("L", "LA", "La", "1", "F") or image.mode.startswith("I")
            mode = mode or ("L" if gray else "RGB")
            array = np.asarray(to_channels(image, 1 if mode == "L" else 3))
            if notes is not None and mode == "L" and not gray:
                rgb = np.asarray(to_channels(image, 3))
                if (rgb != rgb[..., :1]).any():
                    notes.append(f"note: {path} is in colour and this checkpoint repairs gray images: read as gray")
            if notes is not None and (image.mode.startswith("I") and image.mode != "I;8" or image.mode == "F"):
                notes.append(f"note: {path} has more than 8 bits per sample ({image.mode}): read as 8 bits "
                             "(0-65535 scaled to 0-255, as the data loaders read it)")
            return array.reshape(image.height, image.width, -1).copy()
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read image {path}: {error}") from error


def read_mask(path: Path, invert: bool) -> np.ndarray:
    """[H, W] bool, True = hole: the nonzero pixels of the grayscale file (its zero pixels with `invert`)."""
    if not path.is_file():
        raise UsageError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            wide = image.mode.startswith("I") or image.mode == "F"  # 16/32 bits: any nonzero value, unscaled
            hole = np.asarray(image) != 0 if wide else np.asarray(image.convert("L")) != 0
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read image {path}: {error}") from error
    return ~hole if invert else hole


def write_images(images: dict[Path, np.ndarray]) -> None:
    """Writes [H, W, C] uint8 arrays as PNGs, each to a temporary name first and then renamed."""
    temporary = {}
    try:
        for path, array in images.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary[path] = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(temporary[path], format="PNG")
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1  # [1, C, H, W] in [-1, 1]


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


# ---------------------------------------------------------------------------------------- repair
def _round(size: float, stride: int) -> int:
    return max(stride, int(round(size / stride)) * stride)


@torch.no_grad()
def repair_array(model: RepairGAN, image: np.ndarray, hole: np.ndarray | None, size: str) -> np.ndarray:
    """The repaired image [H, W, C] uint8 of `image` [H, W, C] uint8 with `hole` [H, W] bool (inpainting),
    at `size` "fit" or "native" (see the module's docstring); known pixels are copied from `image`."""
    height, width = image.shape[:2]
    stride = model.generator_ema.stride
    x = _to_tensor(image).to(model.device)
    mask = torch.zeros(1, 1, height, width, device=model.device)
    if hole is not None:
        mask[0, 0] = torch.from_numpy(hole).float()
    damaged = x * (1 - mask) if model.inpainting else x
    if size == "fit":
        scale = min(image_hw(model.generator_ema.image_size)) / min(height, width)
        shape = (_round(height * scale, stride), _round(width * scale, stride))
        small_mask = (F.interpolate(mask, size=shape, mode="area") > 0).float()  # a pixel a hole touches is a hole
        small = F.interpolate(damaged, size=shape, mode="bilinear", antialias=True, align_corners=False)
        small = small * (1 - small_mask) if model.inpainting else small
        repaired = model.repair(small, small_mask)
        repaired = F.interpolate(repaired, size=(height, width), mode="bilinear", align_corners=False)
    else:
        pad = (0, -width % stride, 0, -height % stride)
        padded = F.pad(damaged, pad, mode="replicate")
        repaired = model.repair(padded, F.pad(mask, pad, mode="replicate"))[..., :height, :width]
    out = _to_uint8(repaired.clamp(-1, 1))
    if hole is not None:  # paste into the original 8-bit pixels: known ones are the input's, bit for bit
        out = np.where(hole[..., None], out, image)
    return out


# ------------------------------------------------------------------------------------------- jobs
def _images_in(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not found:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return found


def _unique_stems(paths: list[Path]) -> list[Path]:
    """`paths`, refused in one line when two share a name (`x.png`, `x.jpg`): they would share one output or mask."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise UsageError(
                f"{seen[path.stem].name} and {path.name} in {path.parent} have one name, so they would share one "
                f"output ({path.stem}.png) and one mask: rename one of them"
            )
        seen[path.stem] = path
    return paths


def jobs(image: Path, mask: Path | None, out: Path) -> list[tuple[Path, Path | None, Path]]:
    """(image, mask or None, output) triples: one file, or every image of a folder with its mask by name."""
    if not image.is_dir():
        if mask is not None and mask.is_dir():
            raise UsageError(f"--mask {mask} is a folder; with one --image give one mask file")
        return [(image, mask, out / f"{image.stem}.png" if out.is_dir() else out)]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} must be a folder when --image is a folder")
    if mask is not None and not mask.is_dir():
        raise UsageError(f"--mask {mask} must be a folder of masks named like the images when --image is a folder")
    masks = {p.stem: p for p in _unique_stems(_images_in(mask))} if mask is not None else {}
    triples = []
    for path in _unique_stems(_images_in(image)):
        if mask is not None and path.stem not in masks:
            raise UsageError(f"no mask for {path.name} in {mask} (expected {path.stem}.png or another image type)")
        triples.append((path, masks.get(path.stem), out / f"{path.stem}.png"))
    return triples


def damage(triples, kind: str, seed: int, folder: bool = False) -> list[str]:
    """Writes a damaged copy of each clean image and its mask (255 = hole / damaged pixel): `<out stem>_mask.png`
    beside one file; for a folder `<out>/masks/<name>.png`, so that `--image <out> --mask <out>/masks` repairs them."""
    from datamodules.repair.degrade import Degradation
    from datamodules.repair.masks import KINDS, MaskGenerator

    loaded = [(read_image(path), out) for path, _, out in triples]  # every file read before anything is written
    lines = []
    for i, (image, out) in enumerate(loaded):
        generator = torch.Generator().manual_seed(seed + i)
        x = _to_tensor(image)[0]
        try:
            if kind in KINDS:
                hole = MaskGenerator(kind)(x.shape[1], x.shape[2], generator)
                damaged = x * (1 - hole)
            else:
                damaged, hole = Degradation(PRESETS_BY_NAME.get(kind, kind))(x, generator)
        except (RuntimeError, ValueError) as error:  # e.g. no hole of the recipe's size fits in a few pixels
            size = f"{x.shape[2]}x{x.shape[1]}"
            raise UsageError(f"cannot damage {triples[i][0]} ({size}) with {kind}: {error}") from error
        mask_path = out.parent / "masks" / out.name if folder else out.with_name(f"{out.stem}_mask.png")
        mask_pixels = (hole[0] > 0).numpy()[..., None].astype(np.uint8) * 255
        write_images({out: _to_uint8(damaged[None].clamp(-1, 1)), mask_path: mask_pixels})
        share = float((hole > 0).float().mean())
        lines.append(f"wrote {out} ({kind}; {share:.1%} of the pixels in the mask) and {mask_path}")
    return lines


# The restoration presets of datamodules.repair.degrade by the names --damage takes (its "scratches" are holes).
PRESETS_BY_NAME = {"painted_scratches": "scratches"}


def repair(triples, model: RepairGAN, invert: bool, size: str | None) -> list[str]:
    """Repairs every (image, mask, output) triple; every input is read and checked before anything is written."""
    mode = "L" if model.generator_ema.channels == 1 else "RGB"
    size = size or ("fit" if model.inpainting else "native")
    loaded, notes = [], []
    for path, mask_path, out in triples:
        image = read_image(path, mode, notes)
        hole = None
        if model.inpainting:
            hole = read_mask(mask_path, invert)
            if hole.shape != image.shape[:2]:
                raise UsageError(
                    f"mask {mask_path} is {hole.shape[1]}x{hole.shape[0]}, its image {path} "
                    f"{image.shape[1]}x{image.shape[0]}: they must be the same size"
                )
            if hole.all():
                raise UsageError(f"mask {mask_path} makes all of {path} a hole: nothing known to repair from")
        loaded.append((path, image, hole, out))
    lines = notes
    for path, image, hole, out in loaded:
        if hole is not None and not hole.any():
            write_images({out: image})
            lines.append(f"nothing to repair in {path}: its mask has no hole; copied it to {out}")
            continue
        write_images({out: repair_array(model, image, hole, size)})
        lines.append(f"repaired {path} -> {out}" + (f" ({hole.mean():.1%} hole)" if hole is not None else ""))
    return lines


def main(argv: list[str] | None = None) -> None:
    from datamodules.repair.degrade import PRESETS
    from datamodules.repair.masks import KINDS

    damages = [*KINDS, *(name for name in PRESETS if name not in KINDS), *PRESETS_BY_NAME]
    parser = argparse.ArgumentParser(
        prog="sagan repair",
        description="Repair images with a repair GAN checkpoint (inpainting: with a mask; restoration: without), "
        "or write damaged copies of clean images with --damage.",
    )
    parser.add_argument("--ckpt", help="checkpoint written by `sagan fit` with a repair experiment")
    parser.add_argument("--image", required=True, help="an image file, or a folder of images")
    parser.add_argument(
        "--mask", help="inpainting: the mask file (nonzero = hole), or a folder of masks named like the images"
    )
    parser.add_argument("--invert-mask", action="store_true", help="zero mask pixels are the holes")
    parser.add_argument("--out", required=True, help="output PNG file, or a folder")
    parser.add_argument(
        "--size", choices=("fit", "native"),
        help="fit: at the training scale; native: at the image's own size (default: fit for inpainting, native for "
        "restoration)",
    )
    parser.add_argument(
        "--damage", choices=damages,
        help="write a damaged copy (and <out>_mask.png) instead of repairing: a hole mask kind, or a restoration "
        "preset (painted_scratches: the restoration's scratches)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --damage (image i of a folder uses seed + i)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    image, out = Path(args.image), Path(args.out)
    if not image.exists():
        raise UsageError(f"image not found: {image}")
    if args.out.endswith(("/", os.sep)) and not image.is_dir():  # `--out newdir/`: a folder, even a new one
        out = out / f"{image.stem}.png"
    if args.damage:
        for flag, value in (("--ckpt", args.ckpt), ("--mask", args.mask), ("--size", args.size)):
            if value:
                raise UsageError(f"{flag}: --damage writes damaged copies of clean images; it takes no {flag}")
        lines = damage(jobs(image, None, out), args.damage, args.seed, folder=image.is_dir())
    else:
        if not args.ckpt:
            raise UsageError("--ckpt is needed to repair (or --damage KIND to damage clean images)")
        model = load_module(args.ckpt, map_location=args.device, kind=RepairGAN)
        mask = Path(args.mask) if args.mask else None
        if model.inpainting and mask is None:
            raise UsageError(f"{args.ckpt} is an inpainting checkpoint: give the holes with --mask (nonzero = hole)")
        if not model.inpainting and (mask is not None or args.invert_mask):
            raise UsageError(f"{args.ckpt} is a blind restoration checkpoint: it takes no --mask")
        if mask is not None and not mask.exists():
            raise UsageError(f"mask not found: {mask}")
        lines = repair(jobs(image, mask, out), model, args.invert_mask, args.size)
    print("\n".join(lines))
