"""How smoothly clips move: frame-to-frame change, raw and after compensating the clip's motion.

For clips `[N, T, C, H, W]` in [-1, 1] (scaled to [0, 1] here):

- `frame_change`: the mean absolute change between consecutive frames. Still clips score 0; moving
  content scores by how much of the frame it covers and how far it moves; flicker (content that appears,
  vanishes or changes brightness) adds to it.
- `compensated_change`: the same after moving each frame by the whole-pixel shift (within
  `max_shift` pixels, background brought in at the edges) that best matches it to the next frame: the
  clip's estimated motion between those two frames. What is left is what a translation cannot explain:
  flicker, deformation, and objects moving differently from one another.

A real clip of moving digits changes by a fixed amount and little of it is left after compensation; a
clip that flickers keeps most of its change. Both are reported for generated and real clips side by side.
"""

import torch
import torch.nn.functional as F

from sagan.errors import check_range


def _unit(clips: torch.Tensor) -> torch.Tensor:
    """[N, T, C, H, W] in [-1, 1] -> float in [0, 1]."""
    return clips.float().clamp(-1, 1).add(1).div(2)


def frame_change(clips: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between consecutive frames, per clip: [N, T, C, H, W] in [-1, 1] -> [N]."""
    x = _unit(clips)
    return (x[:, 1:] - x[:, :-1]).abs().mean(dim=(1, 2, 3, 4))


def compensated_change(clips: torch.Tensor, max_shift: int = 3) -> torch.Tensor:
    """Mean absolute difference between each frame shifted by its best whole-pixel motion and the next
    frame, per clip: [N, T, C, H, W] in [-1, 1] -> [N]. Shifts are searched in [-max_shift, max_shift]^2
    per pair of frames; the background value (the frame's minimum, -1 for black) fills what comes in."""
    check_range("compensated_change", "max_shift", max_shift, "[0, inf)")
    x = _unit(clips)
    n, t, c, h, w = x.shape
    before, after = x[:, :-1].reshape(-1, c, h, w), x[:, 1:].reshape(-1, c, h, w)
    background = before.amin(dim=(1, 2, 3), keepdim=True)  # [P, 1, 1, 1]
    m = max_shift
    padded = F.pad(before - background, (m, m, m, m)) + background  # [P, C, H + 2m, W + 2m]
    best = torch.full((before.shape[0],), float("inf"), device=x.device)
    for dy in range(2 * m + 1):  # content moves by (m - dy, m - dx)
        for dx in range(2 * m + 1):
            shifted = padded[:, :, dy : dy + h, dx : dx + w]
            best = torch.minimum(best, (shifted - after).abs().mean(dim=(1, 2, 3)))
    return best.view(n, t - 1).mean(dim=1)


def flicker(clips: torch.Tensor, max_shift: int = 3, batch_size: int = 256) -> dict[str, float]:
    """Both figures averaged over clips (in batches): {"change": ..., "compensated": ...}, pixel values in [0, 1]."""
    check_range("flicker", "batch_size", batch_size, "[1, inf)")
    change, compensated = [], []
    for batch in clips.split(batch_size):
        change.append(frame_change(batch))
        compensated.append(compensated_change(batch, max_shift))
    return {"change": torch.cat(change).mean().item(), "compensated": torch.cat(compensated).mean().item()}
