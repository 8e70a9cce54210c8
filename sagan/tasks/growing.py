"""Progressive growing of an image GAN's networks (ProGAN, Karras et al., 2018): the schedule and the
task's side of it, `ProgressiveGrowing`, a mixin of `ImageGAN` (the networks' side is
sagan/models/growing.py, their `grow_from` option).

The schedule counts real images the discriminator has seen (all ranks together). Stage k lasts
`stage_images[k]` images (the last stage lasts to the end of the run); every stage after the first fades
in over its first `fade_images` images. Before each batch the task moves G, its moving average and D to
the stage and fade factor of the images seen so far (the fade factor in place, so a compiled step does not
recompile; a new stage compiles its steps once), shows D the real images at the current resolution blended
with their lower-resolution copy by the same factor, and gives the parameters a new stage brings in fresh
Adam state (they sat at gradient 0 until then). Images seen and the stage are saved in checkpoints (the
fade factor and resolution also in the networks' state): a run stopped mid-fade resumes exactly.
"""

import torch

from sagan.errors import check_ranges
from sagan.models.growing import blend_real, resize


class GrowthSchedule:
    """How long each stage of progressive growing lasts, in real images seen by the discriminator.

    Args:
        stage_images: images of each stage but the last (which lasts to the end of the run), each >= 1; one
            entry fewer than the networks' stages (`grow_from` up to the full resolution).
        fade_images: images over which each stage after the first fades in, from its start; >= 1 and no
            more than any stage's images.
    """

    def __init__(self, stage_images: tuple[int, ...], fade_images: int):
        check_ranges("GrowthSchedule", stage_images=(stage_images, "[1, inf)"), fade_images=(fade_images, "[1, inf)"))
        if any(fade_images > images for images in stage_images[1:]):
            raise ValueError(f"GrowthSchedule: fade_images={fade_images} exceeds a stage's images {stage_images}")
        self.stage_images = tuple(stage_images)
        self.fade_images = fade_images

    @property
    def stages(self) -> int:
        return len(self.stage_images) + 1

    def at(self, images_seen: int) -> tuple[int, float]:
        """The stage and its fade factor after `images_seen` images."""
        start = 0
        for stage, images in enumerate(self.stage_images):
            if images_seen < start + images:
                break
            start += images
        else:
            stage = len(self.stage_images)
        fade = 1.0 if stage == 0 else min(1.0, (images_seen - start) / self.fade_images)
        return stage, fade


class ProgressiveGrowing:
    """The task's side of progressive growing (see the module's docstring); `ImageGAN` mixes it in and sets
    `growing` (a `GrowthSchedule` or None). Needs `generator`, `discriminator`, `generator_ema` and the
    optimizers named "generator" and "discriminator"."""

    growing: GrowthSchedule | None = None

    def init_growing(self, growing: GrowthSchedule | None) -> None:
        """Checks that both networks grow through the schedule's stages (at construction)."""
        self.growing, self.images_seen, self.growth_stage = growing, 0, None
        if growing is None:
            return
        stages = [getattr(getattr(net, "growth", None), "resolutions", None) for net in self._growing_networks()]
        if stages[0] is None or any(s != stages[0] for s in stages) or len(stages[0]) != growing.stages:
            raise ValueError(
                f"{type(self).__name__}: growing needs a generator and a discriminator that grow through "
                f"{growing.stages} stages alike (their grow_from), got resolutions {stages[:2]}"
            )

    def _growing_networks(self) -> list:
        return [net for net in (self.generator, self.generator_ema, self.discriminator) if net is not None]

    @property
    def growth_resolutions(self) -> tuple[int, ...]:
        """The stages' resolutions, lowest first."""
        return self.generator.growth.resolutions

    def grow(self, batch_size: int) -> None:
        """Before a batch: the networks to the stage and fade factor of the images seen, fresh optimizer state
        for the parameters of a stage that begins; then counts the batch (on every rank)."""
        if self.growing is None:
            return
        stage, fade = self.growing.at(self.images_seen)
        if self.growth_stage is not None and stage > self.growth_stage:
            for entered in range(self.growth_stage + 1, stage + 1):
                self._fresh_optimizer_state(self.growth_resolutions[entered])
        self.growth_stage = stage
        for net in self._growing_networks():
            net.growth.set(self.growth_resolutions[stage], fade)
        self.images_seen += batch_size * self.trainer.world_size

    def _fresh_optimizer_state(self, resolution: int) -> None:
        for name, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            optimizer = self.optimizer(name)
            state = getattr(optimizer, "optimizer", optimizer).state
            for module in net.stage_modules(resolution):
                for p in module.parameters():
                    state.pop(p, None)

    def growing_real(self, real: torch.Tensor) -> torch.Tensor:
        # real: [N, C, H, W] -> [N, C, r, r]: D's real images at the current stage (unchanged when not growing)
        return real if self.growing is None else blend_real(real, self.generator.growth)

    def full_resolution(self, images: torch.Tensor) -> torch.Tensor:
        # images: [N, C, r, r] -> [N, C, H, W]: a stage's samples at the full resolution (metrics compare them)
        return images if self.growing is None else resize(images, self.growth_resolutions[-1])

    def save_growth(self, checkpoint: dict) -> None:
        if self.growing is not None:
            checkpoint["growth"] = {"images_seen": self.images_seen, "stage": self.growth_stage}

    def load_growth(self, checkpoint: dict) -> None:
        saved = checkpoint.get("growth")
        if self.growing is not None and saved is not None:
            self.images_seen, self.growth_stage = saved["images_seen"], saved["stage"]
