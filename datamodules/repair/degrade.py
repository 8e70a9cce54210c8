"""Synthetic damage for blind restoration: the "old photo" recipe, applied on the fly and seeded.

`Degradation(preset)(image, generator) -> (damaged, damage_map)`: `image` is [C, H, W] in [-1, 1];
`damaged` has the same shape and range; `damage_map` [1, H, W] is 1.0 where scratches or salt-and-pepper
noise overwrote a pixel (for metrics and display: a blind model never sees it). Every random choice
comes from `generator`. The steps (strengths in [0, 1] intensity units, sizes scaled to the image):

| step | what it does |
|---|---|
| `blur` | Gaussian blur, sigma 0.6-1.5 pixels (times min(H, W) / 64 above 64 pixels) |
| `gaussian_noise` | additive Gaussian noise, sigma 0.02-0.10, independent per channel |
| `speckle` | multiplicative noise `x + x * n`, n ~ N(0, 0.05-0.25) |
| `salt_pepper` | 1-5% of the pixels set to white or black (all channels) |
| `noise` | one of the three noises above (probabilities 0.5, 0.25, 0.25) |
| `lowres` | downscaled by a factor 2-4 (antialiased), then upscaled back (bilinear) |
| `jpeg` | JPEG at quality 10-40 (libjpeg through Pillow) |
| `scratches` | `MaskGenerator("scratches")` strokes painted in a flat light (80%) or dark (20%) tone |

A preset is a set of steps with their probabilities. "old_photo" (after the degradation models of
Wan et al. 2020, "Bringing Old Photos Back to Life", and Real-ESRGAN): blur 0.5, noise 0.5, lowres 0.3,
jpeg 0.5, scratches 0.5, each drawn independently and applied in a random order; when none is drawn,
one of them is applied, so every image is damaged. The single-damage presets ("blur", "noise",
"speckle", "salt_pepper", "lowres", "jpeg", "scratches") apply their one step always.
"""

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from datamodules.repair.masks import MaskGenerator, _Draws

STEPS = ("blur", "gaussian_noise", "speckle", "salt_pepper", "noise", "lowres", "jpeg", "scratches")
PRESETS: dict[str, dict[str, float]] = {
    "old_photo": {"blur": 0.5, "noise": 0.5, "lowres": 0.3, "jpeg": 0.5, "scratches": 0.5},
    "blur": {"blur": 1.0},
    "noise": {"gaussian_noise": 1.0},
    "speckle": {"speckle": 1.0},
    "salt_pepper": {"salt_pepper": 1.0},
    "lowres": {"lowres": 1.0},
    "jpeg": {"jpeg": 1.0},
    "scratches": {"scratches": 1.0},
}

_SCRATCH_MASKS = MaskGenerator("scratches")


def blur(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, None]:
    sigma = rng.uniform(0.6, 1.5) * max(1.0, min(x.shape[-2:]) / 64)
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(x.unsqueeze(0), [size, size], [sigma, sigma]).squeeze(0), None


def gaussian_noise(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, None]:
    sigma = rng.uniform(0.02, 0.10)
    return x + 2 * sigma * torch.randn(x.shape, generator=rng.generator), None


def speckle(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, None]:
    sigma = rng.uniform(0.05, 0.25)
    return x + (x + 1) * sigma * torch.randn(x.shape, generator=rng.generator), None  # u + u * n for u = (x + 1) / 2


def salt_pepper(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, torch.Tensor]:
    amount = rng.uniform(0.01, 0.05)
    u = torch.rand((1, *x.shape[-2:]), generator=rng.generator)
    touched = u < amount
    salt = u < amount / 2
    x = torch.where(touched, torch.where(salt, 1.0, -1.0), x)
    return x, touched


def noise(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, torch.Tensor | None]:
    pick = rng.uniform(0, 1)
    return (gaussian_noise if pick < 0.5 else speckle if pick < 0.75 else salt_pepper)(x, rng)


def lowres(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, None]:
    factor = rng.uniform(2.0, 4.0)
    h, w = x.shape[-2:]
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    down = F.interpolate(x.unsqueeze(0), size=small, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False).squeeze(0), None


def jpeg(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, None]:
    quality = rng.integer(10, 40)
    array = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode), dtype=np.float32) / 255
    decoded = decoded[..., None] if decoded.ndim == 2 else decoded
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1) * 2 - 1, None


def scratches(x: torch.Tensor, rng: _Draws) -> tuple[torch.Tensor, torch.Tensor]:
    touched = _SCRATCH_MASKS(*x.shape[-2:], rng.generator) > 0
    tone = rng.uniform(0.85, 1.0) if rng.uniform(0, 1) < 0.8 else rng.uniform(0.0, 0.15)
    return torch.where(touched, tone * 2 - 1, x), touched


OPERATIONS = {
    "blur": blur, "gaussian_noise": gaussian_noise, "speckle": speckle, "salt_pepper": salt_pepper,
    "noise": noise, "lowres": lowres, "jpeg": jpeg, "scratches": scratches,
}


class Degradation:
    """A seeded damage recipe (see the module docstring).

    Args:
        preset: "old_photo" or a single damage: "blur", "noise", "speckle", "salt_pepper", "lowres",
            "jpeg", "scratches".
        probabilities: {step: probability in [0, 1]} to use instead of the preset's (steps: blur,
            gaussian_noise, speckle, salt_pepper, noise, lowres, jpeg, scratches).
    """

    def __init__(self, preset: str = "old_photo", probabilities: dict[str, float] | None = None):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        steps = dict(PRESETS[preset] if probabilities is None else probabilities)
        for name, p in steps.items():
            if name not in OPERATIONS:
                raise ValueError(f"probabilities: unknown step {name!r}; steps are {', '.join(STEPS)}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probabilities[{name!r}] must be in [0, 1], got {p}")
        if not any(p > 0 for p in steps.values()):
            raise ValueError("probabilities: at least one step needs a probability above 0")
        self.preset = preset
        self.steps = steps

    def __repr__(self) -> str:
        return f"Degradation(preset={self.preset!r}, steps={self.steps})"

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """image [C, H, W] in [-1, 1] -> (damaged [C, H, W] in [-1, 1], damage_map [1, H, W] in {0, 1})."""
        rng = _Draws(generator)
        names = list(self.steps)
        chosen = [name for name in names if rng.uniform(0, 1) < self.steps[name]]
        if not chosen:  # every image gets some damage
            chosen = [names[rng.integer(0, len(names) - 1)]]
        order = torch.randperm(len(chosen), generator=generator).tolist()
        x = image.float()  # the steps work in [-1, 1]: pixels no step touches keep their values exactly
        damage = torch.zeros((1, *image.shape[-2:]), dtype=torch.bool)
        for i in order:
            x, touched = OPERATIONS[chosen[i]](x, rng)
            x = x.clamp(-1, 1)
            if touched is not None:
                damage |= touched
        return x, damage.float()
