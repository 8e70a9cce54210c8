"""Classical repair baselines, with the signature the repair metrics score: `repair(damaged, mask) -> prediction`.

Images are [N, C, H, W] in [-1, 1] (any device; the work is done on the CPU, in float32 except for
OpenCV's inpainting, which works in 8 bits); masks [N, 1, H, W], nonzero = hole. Inpainting predictions
are composited by the caller (`sagan.evaluation.repair_metrics.composite`); restoration baselines get
no mask (it is None).

Inpainting:
- `telea`: OpenCV's fast-marching inpainting (Telea 2004), radius 3, each channel on its own.
- `navier_stokes`: OpenCV's Navier-Stokes inpainting (Bertalmio et al. 2001), radius 3.
- `biharmonic`: scikit-image's biharmonic inpainting (Damelin and Hoang 2018).
- `mean_fill`: holes filled with the mean of the image's known pixels, per channel.
- `zero_fill`: holes left at 0 (the damaged input itself): the floor every method should beat.

Restoration:
- `damaged_input`: the damaged image unchanged.
- `median`: a 3x3 median filter (OpenCV), the classical answer to salt-and-pepper noise and thin scratches.
- `bilateral`: OpenCV's bilateral filter, 5 pixels across, sigma 0.3 in intensity (on the [-1, 1] scale)
  and 3 pixels in space: smooths noise, keeps edges.
"""

from collections.abc import Callable

import cv2
import numpy as np
import torch


def _per_image(fn: Callable[[np.ndarray, np.ndarray | None], np.ndarray]):
    """Lifts `fn(image [H, W, C] float32, hole [H, W] uint8 or None) -> [H, W, C]` to batches of tensors."""

    def repair(damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # damaged: [N, C, H, W], mask: [N, 1, H, W] or None -> [N, C, H, W]
        images = damaged.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        holes = None if mask is None else (mask.detach().cpu()[:, 0] != 0).numpy().astype(np.uint8)
        out = [fn(np.ascontiguousarray(image), None if holes is None else holes[i]) for i, image in enumerate(images)]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(damaged.device, damaged.dtype)

    repair.__name__ = fn.__name__
    repair.__doc__ = fn.__doc__
    return repair


def _opencv_inpaint(image: np.ndarray, hole: np.ndarray, method: int, radius: float = 3.0) -> np.ndarray:
    # in 8 bits, OpenCV's documented input (its Telea gives wrong values on float32 images); after
    # compositing only the holes' values count, so the rounding costs at most 1/255 there
    levels = np.round((np.clip(image, -1, 1) + 1) * 127.5).astype(np.uint8)
    channels = [cv2.inpaint(levels[..., c], hole, radius, method) for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1).astype(np.float32) / 127.5 - 1


@_per_image
def telea(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV's Telea inpainting."""
    return _opencv_inpaint(image, hole, cv2.INPAINT_TELEA)


@_per_image
def navier_stokes(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV's Navier-Stokes inpainting."""
    return _opencv_inpaint(image, hole, cv2.INPAINT_NS)


@_per_image
def biharmonic(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic inpainting."""
    from skimage.restoration import inpaint_biharmonic

    if hole.all():  # nothing known to extend
        return np.zeros_like(image)
    return inpaint_biharmonic(image, hole.astype(bool), channel_axis=-1).astype(np.float32)


@_per_image
def mean_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Holes filled with the mean of the known pixels, per channel."""
    known = hole == 0
    mean = image[known].mean(axis=0) if known.any() else np.zeros(image.shape[-1], np.float32)
    return np.where(known[..., None], image, mean[None, None, :]).astype(np.float32)


@_per_image
def zero_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Holes left at 0."""
    return np.where(hole[..., None] == 0, image, 0).astype(np.float32)


@_per_image
def damaged_input(image: np.ndarray, hole: None = None) -> np.ndarray:
    """The damaged image unchanged."""
    return image


@_per_image
def median(image: np.ndarray, hole: None = None) -> np.ndarray:
    """3x3 median filter."""
    out = cv2.medianBlur(image, 3)
    return out.reshape(image.shape)


@_per_image
def bilateral(image: np.ndarray, hole: None = None) -> np.ndarray:
    """Bilateral filter (5 pixels, sigma 0.3 in intensity, 3 in space)."""
    out = cv2.bilateralFilter(image, 5, 0.3, 3.0)
    return out.reshape(image.shape)


INPAINTING = {"Telea (OpenCV)": telea, "Navier-Stokes (OpenCV)": navier_stokes, "biharmonic (scikit-image)": biharmonic,
              "mean fill": mean_fill, "holes left at 0": zero_fill}
RESTORATION = {"damaged input": damaged_input, "median 3x3": median, "bilateral": bilateral}
