"""Writes a folder of digit images unlike the embedded ones, for the fine-tuning example in docs/training.md.

    python scripts/make_digit_variants.py --out data/thick_digits [--style thick|inverted] [--size 32]

Each of scikit-learn's 1,797 8x8 digits is resized to `--size` (bilinear, as the embedded data module does),
then restyled: `thick` draws its strokes with a broader pen (a 5x5 maximum filter at 32 px), `inverted` makes it
dark on light. The PNGs go to `<out>/<digit>/<index>.png`, one class sub-folder per digit, so
`ImageFolderDataModule` with `use_labels: true` reads them as ten classes (in the digits' order).
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits


def restyled_digits(style: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as `style` draws them: images [N, size, size] in [0, 1] and labels [N]."""
    data = load_digits()
    images = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    if style == "thick":
        pen = max(3, size // 32 * 4 + 1)  # 5 at 32 px: strokes about twice as broad
        images = F.max_pool2d(images, kernel_size=pen, stride=1, padding=pen // 2)
    elif style == "inverted":
        images = 1.0 - images
    else:
        raise ValueError(f"unknown style {style!r} (thick or inverted)")
    return images[:, 0], torch.as_tensor(data.target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (class sub-folders 0..9)")
    parser.add_argument("--style", choices=("thick", "inverted"), default="thick")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    args = parser.parse_args()
    images, labels = restyled_digits(args.style, args.size)
    out = Path(args.out)
    for index, (image, label) in enumerate(zip(images, labels.tolist())):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png")
    print(f"{len(images)} {args.style} digits ({args.size}x{args.size}) in {out}/<digit>/")


if __name__ == "__main__":
    main()
