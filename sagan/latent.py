"""Noise and label tools for trained generators: the truncation trick and latent interpolation.

Truncation (Brock et al., 2019, BigGAN): entries of z beyond a threshold are redrawn until every entry
lies within it, trading variety for fidelity as the threshold shrinks. Redrawing keeps the entries that
were already inside, so truncated noise from a seed differs from the plain noise of that seed only where
the plain noise went beyond the threshold.

Interpolation: spherical (slerp; the norm of Gaussian noise concentrates near sqrt(z_dim), which slerp
keeps and linear interpolation does not) or linear between noise vectors, and linear between classes as
blends of one-hot class weights, which conditional generators turn into blends of their class embeddings
and conditional-norm parameters (`sagan.layers.norm.embed_classes`).
"""

import math
from collections.abc import Iterator
from typing import Literal

import torch

InterpolationMode = Literal["slerp", "lerp"]


MAX_REDRAWS = 1_000  # rounds of redrawing; entries still outside then are drawn from the truncated normal directly
MIN_INSIDE = 0.01  # below this chance of a draw landing within the threshold, no redrawing at all (T < 0.0125)
NOISE_CHUNK = 65_536  # rows of noise drawn at once by `noise_chunks` (up to this many, the same as `noise`)


def truncate(z: torch.Tensor, threshold: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`z` with every entry beyond `threshold` in absolute value redrawn from N(0, 1) until it lies within.

    Redrawing until inside is drawing from the normal truncated to [-threshold, threshold]. Entries still
    outside after `MAX_REDRAWS` rounds (thresholds below about 0.05), or all of them when a draw lands
    inside less than `MIN_INSIDE` of the time (below about 0.0125), are drawn from that distribution
    directly (inverse CDF), so that every threshold > 0 returns at once."""
    if not threshold > 0:
        raise ValueError(f"truncation threshold must be > 0, got {threshold}")
    z = z.clone()
    flat = z.view(-1)
    outside = (flat.abs() > threshold).nonzero().squeeze(1)  # in order: the draws of redrawing the masked entries
    inside = math.erf(threshold / math.sqrt(2))  # the chance that a draw lands within the threshold
    for _ in range(MAX_REDRAWS if inside >= MIN_INSIDE else 0):
        if not len(outside):
            return z
        fresh = torch.randn(len(outside), generator=generator, dtype=z.dtype).to(z.device)
        flat[outside] = fresh
        outside = outside[fresh.abs() > threshold]
    if len(outside):
        edge = torch.special.ndtr(torch.tensor(threshold, dtype=torch.float64))  # P(x <= threshold)
        u = torch.rand(len(outside), generator=generator, dtype=torch.float64)
        drawn = torch.special.ndtri(1 - edge + u * (2 * edge - 1)).clamp(-threshold, threshold)
        flat[outside] = drawn.to(z.dtype).to(z.device)
    return z


def noise(
    n: int, z_dim: int, truncation: float | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`[n, z_dim]` standard normal noise, truncated at `truncation` when it is given."""
    z = torch.randn(n, z_dim, generator=generator)
    return z if truncation is None else truncate(z, truncation, generator)


def noise_chunks(
    n: int, z_dim: int, truncation: float | None = None, generator: torch.Generator | None = None,
    chunk: int = NOISE_CHUNK,
) -> Iterator[torch.Tensor]:
    """The noise of `n` samples in chunks of up to `chunk` rows, each drawn as `noise` draws it: for
    n <= chunk one chunk equal to `noise(n, ...)`; more never sit in memory at once."""
    for start in range(0, n, chunk):
        yield noise(min(chunk, n - start), z_dim, truncation, generator)


def seed_noise(seed: int, z_dim: int, truncation: float | None = None) -> torch.Tensor:
    """The noise vector `[z_dim]` of a seed (the first row `sagan sample --seed` draws)."""
    return noise(1, z_dim, truncation, torch.Generator().manual_seed(seed))[0]


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for vectors `a`, `b` [D] and fractions `t` [S] -> [S, D]."""
    t = t.to(a.dtype)[:, None]
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle from `a` to `b` [D] (norms interpolated linearly),
    at fractions `t` [S] -> [S, D]; linear when the two directions (nearly) coincide."""
    norm_a, norm_b = a.norm(), b.norm()
    unit_a, unit_b = a / norm_a, b / norm_b
    omega = torch.arccos((unit_a * unit_b).sum().clamp(-1.0, 1.0))
    if omega < 1e-4:
        return lerp(a, b, t)
    t = t.to(a.dtype)[:, None]
    direction = (torch.sin((1 - t) * omega) * unit_a + torch.sin(t * omega) * unit_b) / torch.sin(omega)
    return direction * ((1 - t) * norm_a + t * norm_b)


def path(points: torch.Tensor, steps: int, mode: InterpolationMode = "lerp") -> torch.Tensor:
    """`steps` intervals between each pair of consecutive rows of `points` [K, D], both ends included:
    [(K - 1) * steps + 1, D] (K = 1: the single point)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if mode not in ("slerp", "lerp"):
        raise ValueError(f"interpolation mode must be 'slerp' or 'lerp', got {mode!r}")
    if len(points) == 1:
        return points.clone()
    between = slerp if mode == "slerp" else lerp
    t = torch.arange(steps, dtype=torch.float64) / steps
    segments = [between(a, b, t) for a, b in zip(points[:-1], points[1:])]
    return torch.cat([*segments, points[-1:]])


def class_weights(classes: list[int], num_classes: int) -> torch.Tensor:
    """One-hot class weights [len(classes), num_classes] (float), the points of a class interpolation."""
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"classes must lie in 0..{num_classes - 1}, got {bad}")
    return torch.eye(num_classes)[classes]
