"""The LightningModule that trains a network to repair damaged images: inpainting and blind restoration.

Batches are `(damaged, mask, clean, label)` (datamodules/repair/damaged.py; mask 1 = hole). The generator sees
the damaged image and, for inpainting, the mask; its output is *composited*: known pixels are copied from
the input, so only the holes are generated (`composite`). Blind restoration (`task="restore"`) gives the
generator the damaged image alone and keeps its whole output; the mask is then the damage map, used by
the loss and the metrics only.

Manual optimization as in `ImageGAN`: each batch is one discriminator step, and every `n_critic`-th
batch also a generator step (`global_step = generator_iterations * (n_critic + 1)`, `--g_iters` works).
The generator's losses: hinge (or any `AdversarialLoss`) on the SN-PatchGAN's patch logits, L1 to the
clean image with hole pixels weighted `hole_weight` times the known ones, and feature matching (L1 between
the discriminator's activations on the repaired and the clean image), which stands in for a perceptual
loss whose network weights cannot be downloaded here. The optimizers, the schedule, step counting, the EMA of
the generator, per-network DDP, skipping of non-finite steps and exact resume come from `AdversarialTask`
(sagan/tasks/base.py).
"""

from typing import Literal

import torch
from torch import nn
from torch.utils.data import default_collate

from sagan.errors import UsageError, check_ranges
from sagan.evaluation.metrics import SampleQuality
from sagan.evaluation.recipe import record_recipe
from sagan.evaluation.repair_metrics import RepairEvaluation, composite
from sagan.layers.norm import frozen_spectral_norm
from sagan.losses import AdversarialLoss, HingeLoss
from sagan.tasks.base import AdversarialTask
from sagan.training.distributed import check_strategy
from sagan.training.sample_grid import attention_picture

TASKS = ("inpaint", "restore")


class RepairGAN(AdversarialTask):
    """Adversarial training of a repair generator G(damaged, mask) against a patch discriminator D(image, mask).

    Args:
        generator: repair network with `use_mask`, called as `generator(damaged, mask or None)`.
        discriminator: patch discriminator with `use_mask` and `features(image, mask) -> (logits, activations)`.
        task: "inpaint" (the networks read the mask, the output is composited) or "restore" (blind: no mask);
            linked from the data module's `task`.
        loss: the adversarial objective.
        adversarial_weight: weight of the adversarial loss in G's loss.
        l1_weight: weight of the L1 reconstruction loss.
        hole_weight: per-pixel weight of hole (damaged) pixels in the L1 loss; known pixels weigh 1.
        feature_matching_weight: weight of the feature-matching loss on D's activations (0: off).
        lr_g: generator learning rate.
        lr_d: discriminator learning rate.
        betas: Adam betas of both optimizers.
        n_critic: discriminator steps per generator step.
        ema_decay: decay of the exponential moving average of the generator used for repairs.
        ema_start: generator iterations during which the average simply copies the generator.
        ema_uniform_start: from this generator iteration on (>= `ema_start`), the average is uniform: the mean of
            the average at that iteration and every generator after it (Polyak averaging); None: exponential.
        grad_clip: clip each network's gradient norm to this value (None: no clipping).
        grid_size: fixed validation images in the sample grids.
        evaluation: validation metrics (PSNR, SSIM, hole L1, LPIPS, FID / KID of the repaired images, per
            hole-size bucket for inpainting; sagan/evaluation/repair_metrics.py); None: PSNR, SSIM and hole
            L1 only.
        max_nonfinite: stop the run (with a checkpoint) after this many consecutive skipped steps of one network.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        task: Literal["inpaint", "restore"] = "inpaint",
        loss: AdversarialLoss = HingeLoss(),
        adversarial_weight: float = 0.1,
        l1_weight: float = 1.0,
        hole_weight: float = 5.0,
        feature_matching_weight: float = 1.0,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        n_critic: int = 1,
        ema_decay: float = 0.999,
        ema_start: int = 0,
        ema_uniform_start: int | None = None,
        grad_clip: float | None = None,
        grid_size: int = 16,
        evaluation: RepairEvaluation | None = None,
        max_nonfinite: int = 10,
    ):
        super().__init__(
            generator, discriminator, lr_g=lr_g, lr_d=lr_d, betas=betas, n_critic=n_critic, grad_clip=grad_clip,
            grid_size=grid_size, max_nonfinite=max_nonfinite, ema_decay=ema_decay, ema_start=ema_start,
            ema_uniform_start=ema_uniform_start, not_saved=("evaluation",),
        )
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if getattr(net, "use_mask", None) != (task == "inpaint"):
                want = "true: inpainting reads the mask" if task == "inpaint" else "false: blind restoration has none"
                raise ValueError(f"task={task}: the {name}'s use_mask must be {want}")
        check_ranges(
            "RepairGAN", adversarial_weight=(adversarial_weight, "[0, inf)"), l1_weight=(l1_weight, "[0, inf)"),
            hole_weight=(hole_weight, "(0, inf)"), feature_matching_weight=(feature_matching_weight, "[0, inf)"),
        )
        self.task, self.loss = task, loss
        self.inpainting = task == "inpaint"
        self.grid_nrow = 3 * min(grid_size, 4)  # damaged | repaired | original, up to 4 images a row
        self._grid: list[torch.Tensor] | None = None  # fixed validation items, fetched on first use
        self._recipe_recorded = False  # the validation recipe goes beside the logged numbers once a run
        self.evaluation = evaluation or RepairEvaluation(features=None, lpips=False, buckets=self.inpainting)

    # ----------------------------------------------------------------------------------- repairing
    def _hole(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        return mask if self.inpainting else None

    @torch.no_grad()
    def repair(self, damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The EMA generator's repair, composited for inpainting (known pixels kept exactly).

        damaged: [N, C, H, W] in [-1, 1]; mask: [N, 1, H, W], 1 = hole (inpainting; a blind restorer ignores
        it) -> [N, C, H, W] in [-1, 1]. Height and width: multiples of the generator's `stride`.
        """
        if self.inpainting and mask is None:
            raise ValueError("an inpainting model needs the hole mask")
        output = self.generator_ema(damaged, self._hole(mask))
        return composite(damaged, output, mask) if self.inpainting else output

    def forward(self, damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # damaged: [N, C, H, W], mask: [N, 1, H, W] or None -> [N, C, H, W] repaired, in [-1, 1]
        return self.repair(damaged, mask)

    # ------------------------------------------------------------------------------------- losses
    def _output(self, output: torch.Tensor, damaged: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What the discriminator and the metrics see: the composited repair (inpainting), the whole output else."""
        return composite(damaged, output, mask) if self.inpainting else output

    def discriminator_loss(
        self, clean: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on clean images and repaired ones (composited), one pass over both, plus its statistics."""
        hole = self._hole(mask)
        logits = self._net("discriminator")(
            torch.cat([clean, fake.detach()]), None if hole is None else torch.cat([hole, hole])
        )
        d_real, d_fake = logits.chunk(2)
        loss = self.loss.discriminator(d_real, d_fake)
        return loss, {"train/d_real": d_real.detach().mean(), "train/d_fake": d_fake.detach().mean()}

    def generator_loss(
        self, output: torch.Tensor, damaged: torch.Tensor, mask: torch.Tensor, clean: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's loss from its raw output: adversarial on the composited repair, weighted L1, feature matching."""
        weight = 1 + (self.hparams.hole_weight - 1) * mask  # [N, 1, H, W]
        l1 = (weight * (output - clean).abs()).mean() / weight.mean()
        hole = self._hole(mask)
        with frozen_spectral_norm(self.discriminator):
            logits, activations = self._net("discriminator", "features")(
                torch.cat([self._output(output, damaged, mask), clean]),
                None if hole is None else torch.cat([hole, hole]),
            )
        d_fake, d_real = logits.chunk(2)
        adversarial = self.loss.generator(d_fake, d_real.detach() if self.loss.generator_needs_real else None)
        matching = torch.stack([(f - r.detach()).abs().mean() for f, r in (a.chunk(2) for a in activations)]).mean()
        hp = self.hparams
        loss = hp.adversarial_weight * adversarial + hp.l1_weight * l1 + hp.feature_matching_weight * matching
        stats = {
            "train/g_adversarial": adversarial.detach(), "train/g_l1": l1.detach(),
            "train/g_feature_matching": matching.detach(),
        }
        return loss, stats

    # ----------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        if stage == "fit":
            check_strategy(getattr(self.trainer, "strategy", None))
        trainer = self.trainer
        if any(isinstance(c, SampleQuality) and c.enabled for c in getattr(trainer, "callbacks", [])):
            raise UsageError(
                "--metrics.features: the sample metrics score noise-driven generators; a repair GAN is scored by "
                "--model.evaluation (set --metrics.features=null)"
            )
        self.evaluation.resolve(trainer.datamodule)  # missing Inception weights stop the run here
        if stage in ("fit", "validate") and trainer.limit_val_batches != 0:  # extractor and real statistics now
            num_real = 64 if trainer.fast_dev_run else None
            strategy = trainer.strategy
            self.evaluation.prepare(trainer.datamodule, strategy.root_device, strategy.broadcast, num_real)

    def training_step(self, batch, batch_idx: int) -> None:
        damaged, mask, clean, _ = batch
        n = clean.shape[0]
        generator_turn = self.generator_turn()
        if generator_turn:  # one forward pass of G serves D's step (detached) and G's own
            output = self._net("generator")(damaged, self._hole(mask))
        else:
            with torch.no_grad():
                output = self.generator(damaged, self._hole(mask))
        with self.toggled_optimizer(self.optimizer("discriminator")):
            d_loss, stats = self.discriminator_loss(clean, self._output(output, damaged, mask), mask)
            self.take_step("discriminator", d_loss, "discriminator")
        self.log_dict({"train/d_loss": d_loss.detach(), **stats}, batch_size=n)
        if generator_turn:
            with self.toggled_optimizer(self.optimizer("generator")):
                g_loss, stats = self.generator_loss(output, damaged, mask, clean)
                self.take_step("generator", g_loss, "generator")
            self.update_ema()
            self.log_dict({"train/g_loss": g_loss.detach(), **stats}, batch_size=n)
        self.log_skipped_steps()

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.evaluation.reset()

    def validation_step(self, batch, batch_idx: int) -> None:
        """The EMA generator's repairs of the fixed validation damage, scored after compositing."""
        damaged, mask, clean, _ = batch
        self.evaluation.update(self.repair(damaged, mask), clean, mask)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        for key, value in self.evaluation.compute("val/").items():  # the same numbers on every rank
            self.log(key, value.float())
        if self.evaluation.scored and not self._recipe_recorded and not self.trainer.sanity_checking:
            record_recipe(self.trainer, "val_recipe", self.evaluation.recipe(self.trainer.datamodule))
            self._recipe_recorded = True

    # ------------------------------------------------------------------------------------ pictures
    def _grid_items(self) -> list[torch.Tensor]:
        """The first `grid_size` validation items (fixed images and masks) on this module's device."""
        if self._grid is None:
            dataset = self.trainer.datamodule.val_dataloader().dataset  # set up by the trainer before training
            items = [dataset[i] for i in range(min(self.hparams.grid_size, len(dataset)))]
            self._grid = list(default_collate(items))[:3]
        return [x.to(self.device) for x in self._grid]

    @torch.no_grad()
    def fixed_samples(self) -> dict[str, torch.Tensor]:
        """Pictures for the samples callback: `grid`, rows of damaged | repaired | original, and (with a
        masked transformer) `attention`: damaged with a hole pixel marked | where it reads | repaired."""
        damaged, mask, clean = self._grid_items()
        repaired = self.repair(damaged, mask)
        pictures = {"grid": torch.stack([damaged, repaired, clean], dim=1).flatten(0, 1)}
        attention_map = getattr(self.generator_ema, "attention_map", None)
        weights = attention_map(damaged, self._hole(mask)) if attention_map is not None else None
        if weights is not None:
            marked, heat = attention_picture(damaged, mask, weights)
            rgb = repaired.expand(-1, 3, -1, -1) if repaired.shape[1] == 1 else repaired
            pictures["attention"] = torch.stack([marked, heat, rgb], dim=1).flatten(0, 1)
        return pictures
