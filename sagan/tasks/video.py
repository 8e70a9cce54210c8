"""The LightningModule that trains a video generator: `ImageGAN`'s training with clips for images.

Everything in `ImageGAN` (sagan/tasks/image.py) is indifferent to what the generator produces, so a
video GAN is the image GAN with clips `[N, T, C, H, W]` in [-1, 1] in place of images: the same
alternating steps, losses, penalties, EMA, per-network DDP, exact resume and non-finite skipping. What
differs is how samples are shown: an animated GIF grid (one clip per cell) in the run directory, sent to
the logger as a video.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sagan.errors import UsageError
from sagan.tasks.image import ImageGAN
from sagan.training.sample_grid import to_grid


def to_gif_frames(clips: torch.Tensor, nrow: int) -> list[Image.Image]:
    """[N, T, C, H, W] clips in [-1, 1] -> T grid images (8-bit, gray or RGB), one clip per cell."""
    frames = []
    for t in range(clips.shape[1]):
        grid = to_grid(clips[:, t].cpu(), nrow)  # [C, H', W'] in [0, 1]
        array = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        frames.append(Image.fromarray(array[..., 0] if array.shape[-1] == 1 else np.ascontiguousarray(array)))
    return frames


def save_gif(frames: list[Image.Image], path: Path, fps: int) -> Path:
    """Writes frames as an animated GIF that loops forever; returns `path`."""
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return path


class VideoGAN(ImageGAN):
    """Adversarial training of a generator G(z, y) -> clip `[T, C, H, W]` against a discriminator D(clip, y).

    Takes `ImageGAN`'s arguments (see its documentation). `augment` is applied to each clip with frames
    folded into channels, so every frame of a clip gets the same transformation; only translation and
    cutout are allowed (color jitter would mix frames). Samples: `samples/video_<iteration>.gif` (`gif_fps`
    frames per second), logged as `samples/video`.
    """

    gif_fps = 8

    def setup(self, stage: str) -> None:
        policy = getattr(self.augment, "policy", ())
        if "color" in policy:
            raise UsageError("--model.augment: a VideoGAN takes DiffAugment's translation and cutout, not color")
        super().setup(stage)

    def critic(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The discriminator behind the augmentation, which sees each clip as one image of T * C channels."""
        if self.augment is not None:
            x = self.augment(x.flatten(1, 2)).view_as(x)
        return self._net("discriminator")(x, y if self.num_classes else None)

    @torch.no_grad()
    def write_samples(self, directory: Path, step: int, loggers) -> Path:
        """EMA clips of the fixed noise as an animated GIF grid, in `directory` and sent to video loggers."""
        clips = self.fixed_samples()
        nrow = self.num_classes or max(int(len(clips) ** 0.5), 1)
        path = save_gif(to_gif_frames(clips, nrow), directory / f"video_{step:06d}.gif", self.gif_fps)
        for logger in loggers:
            if hasattr(logger, "log_video"):
                logger.log_video(key="samples/video", videos=[str(path)], caption=[f"generator iteration {step}"],
                                 format=["gif"])
        return path
