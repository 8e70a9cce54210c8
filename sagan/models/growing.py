"""Progressive growing (Karras et al., 2018, ProGAN) as an option of the image networks (`grow_from`).

A growing network is built whole from the start: every block of the full-resolution network, plus one
to-image head per lower generator stage and one from-image input per lower discriminator resolution, so
checkpoints and DDP see every parameter from the first step. Which part runs is its `GrowthState`: the
current resolution (a Python int: a compiled step specializes on it, one graph per stage) and the fade
factor of the newest stage (a 0-dim tensor buffer: a compiled step reads it, so moving it never
recompiles). Both are in the network's state dict, so a checkpoint taken mid-fade restores them.

While a stage fades in, the network's output is the blend `lerp(old, new, fade)` of the previous stage's
path (upsampled for the generator, from the pooled image for the discriminator) and the new one: at fade 0
it is exactly the previous stage's, at fade 1 exactly the new one's. Parameters a stage does not use join
the output through `zero_term` (gradient 0, never None), as DDP's reducer expects.
"""

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


class GrowthState(nn.Module):
    """Where a growing network is: `resolution` (one of `resolutions`, increasing, the last the full one)
    and `fade` (in [0, 1], how far the current stage has faded in; 1 in the first stage).

    Args:
        resolutions: the stages' resolutions, each twice the one before.
    """

    def __init__(self, resolutions: tuple[int, ...]):
        super().__init__()
        if len(resolutions) < 2 or any(b != 2 * a for a, b in zip(resolutions, resolutions[1:])):
            raise ValueError(f"GrowthState: resolutions must double from stage to stage, got {resolutions}")
        self.resolutions = tuple(resolutions)
        self.resolution = self.resolutions[-1]  # built at the end of growing: a full network until told
        self.register_buffer("fade", torch.ones(()))
        self.register_buffer("saved_resolution", torch.tensor(self.resolution))  # `resolution` in the state dict

    @property
    def stage(self) -> int:
        """Index of the current resolution in `resolutions`."""
        return self.resolutions.index(self.resolution)

    @property
    def previous(self) -> int | None:
        """The previous stage's resolution (None in the first stage)."""
        return self.resolutions[self.stage - 1] if self.stage else None

    def set(self, resolution: int, fade: float) -> None:
        """Moves to `resolution` with fade factor `fade` (in place: a compiled step sees the new value)."""
        if resolution not in self.resolutions:
            raise ValueError(f"GrowthState: resolution must be one of {self.resolutions}, got {resolution}")
        if not 0.0 <= fade <= 1.0:
            raise ValueError(f"GrowthState: fade must be in [0, 1], got {fade}")
        self.resolution = resolution
        self.fade.fill_(fade)
        self.saved_resolution.fill_(resolution)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.resolution = int(self.saved_resolution)  # once, when loading: the steps read the int


def square_only(height: int, width: int, who: str) -> None:
    """Growing doubles a square image's side per stage: a [height, width] network does not grow."""
    if height != width:
        raise ValueError(f"{who}: grow_from needs a square image_size, got [{height}, {width}]")


def growth_resolutions(grow_from: int, image_size: int, available: Iterable[int], who: str) -> tuple[int, ...]:
    """The stages of a network that grows from `grow_from` to `image_size`; `available`: the resolutions
    where a stage can start (the generator's block outputs, the discriminator's block inputs)."""
    options = sorted(r for r in set(available) if r < image_size)
    if grow_from not in options:
        raise ValueError(f"{who}: grow_from must be one of {options} (a {image_size}px network), got {grow_from}")
    resolutions, r = [], grow_from
    while r <= image_size:
        resolutions.append(r)
        r *= 2
    return tuple(resolutions)


def zero_term(modules: Iterable[nn.Module]) -> torch.Tensor | float:
    """0 times the sum of the modules' parameters: added to an output, it gives every parameter of a part
    that does not run this stage a gradient of 0 (DDP expects a gradient for each) and leaves the output as
    it is."""
    params = [p for module in modules for p in module.parameters()]
    return sum(p.sum() for p in params) * 0.0 if params else 0.0


def fade_in(old: torch.Tensor, new: torch.Tensor, state: GrowthState) -> torch.Tensor:
    """The blend of the previous stage's `old` and the current stage's `new`: exactly `old` at fade 0,
    exactly `new` at fade 1."""
    return torch.lerp(old, new, state.fade.to(new.dtype))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    # x: [N, C, H, W] -> [N, C, size, size]: nearest-neighbour up (a stage's output on a bigger canvas),
    #   average pooling down (an image as a lower stage sees it)
    if x.shape[-1] == size:
        return x
    if x.shape[-1] < size:
        return F.interpolate(x, scale_factor=size // x.shape[-1], mode="nearest")
    return F.avg_pool2d(x, x.shape[-1] // size)


def blend_real(real: torch.Tensor, state: GrowthState) -> torch.Tensor:
    # real: [N, C, H, W] full-resolution images -> [N, C, r, r] at the current resolution r, blended with
    #   their copy at the previous resolution (upsampled) by the fade factor, as the generator's output is
    current = resize(real, state.resolution)
    if state.previous is None:
        return current
    return fade_in(resize(resize(real, state.previous), state.resolution), current, state)
