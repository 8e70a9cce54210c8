"""The LightningModule that trains an image generator against a discriminator.

Manual optimization: each training batch is one discriminator step, and every `n_critic`-th batch is
followed by one generator step on fresh noise. Lightning's `trainer.global_step` counts optimizer steps
of both networks, so `global_step = generator_iterations * (n_critic + 1)`; `generator_steps` gives the
generator iterations directly and the CLI's `--g_iters` sets `max_steps` from it.

Runs that survive: a step whose loss or gradients are not finite is skipped on the device (fused Adam's
`found_inf`, the GradScaler mechanism; sagan/training/nonfinite.py) and counted in `train/skipped_steps`; after
`max_nonfinite` consecutive skipped steps of one network the run stops with a checkpoint. Checkpoints
carry the random generators' states, so a resumed run draws the noise the uninterrupted run would have
drawn. Under several processes each network has its own DDP wrapper (`distribute`, sagan/training/distributed.py).
These mechanisms, the optimizers, the schedule, step counting and the EMA come from `AdversarialTask`
(sagan/tasks/base.py), shared with the repair and text GANs.
"""

import torch
from torch import nn

from sagan.errors import UsageError, check_ranges
from sagan.layers.attention import SelfAttention2d
from sagan.layers.norm import frozen_spectral_norm
from sagan.losses import AdversarialLoss, HingeLoss, Penalty
from sagan.tasks.base import AdversarialTask
from sagan.tasks.growing import GrowthSchedule, ProgressiveGrowing
from sagan.training.checkpoints import data_facts
from sagan.training.distributed import check_strategy
from sagan.training.ema import StandingStatistics
from sagan.visualization.panels import image_gan_panels


class ImageGAN(ProgressiveGrowing, StandingStatistics, AdversarialTask):
    """Adversarial training of a generator G(z, y) -> image against a discriminator D(image, y) -> logit.

    Args:
        generator: network with attributes `z_dim` and `num_classes`, called as `generator(z, y)`.
        discriminator: network called as `discriminator(x, y)`, returning one logit per sample.
        loss: the adversarial objective.
        penalty: optional regularizer of the discriminator (`GradientPenalty`, `R1Penalty`, `R2Penalty`,
            `R1R2Penalty`; the R penalties also by `approximation: finite_difference`, no double backward).
        penalty_every: lazy regularization (StyleGAN2, Karras et al., 2020): the penalty is computed at every
            `penalty_every`-th discriminator step only, multiplied by `penalty_every` so that its average
            weight stays the same; >= 1 (1: every step). Its extra passes then cost 1 / penalty_every.
        augment: optional differentiable augmentation applied to real and fake images before D.
        lr_g: generator learning rate, >= 0 (two time-scale update rule: D learns faster).
        lr_d: discriminator learning rate, >= 0.
        betas: Adam betas of both optimizers, each in [0, 1).
        n_critic: discriminator steps per generator step (>= 1).
        ema_decay: decay of the exponential moving average of the generator used for samples, in [0, 1).
        ema_start: generator iterations during which the average simply copies the generator.
        ema_uniform_start: from this generator iteration on (>= `ema_start`), the average is uniform: the mean of
            the average at that iteration and every generator after it (Polyak averaging); None: exponential.
        ema_bn_samples: with batch norms in G, the average's running statistics are recomputed on this many fixed
            noise samples wherever it is read (validation, sample grids, checkpoints: BigGAN's standing
            statistics, see `sagan/training/ema.py`); 0: they are the generator's, copied at every step.
        lr_decay_start: from this generator iteration on, both learning rates fall linearly to zero at the
            run's last iteration (`--g_iters`), >= 0; None: constant rates.
        grad_clip: clip each network's gradient norm to this value (None or 0: no clipping).
        grid_size: samples in the fixed-noise grid that callbacks draw.
        compile: compile the discriminator step and the generator step with torch.compile, one graph each
            (fullgraph), compiled once per run: see "Speed" in the README.
        compile_mode: torch.compile mode of the inductor backend, e.g. "reduce-overhead" for CUDA graphs.
        compile_backend: torch.compile backend: "inductor" (default), or "aot_eager" / "eager" to check
            graph capture quickly (the tests do).
        sync_batchnorm: with several processes, G's batch norms use statistics of the global batch
            (SyncBatchNorm, one all-reduce per norm layer per forward pass); D is left as it is.
        max_nonfinite: stop the run (with a checkpoint) after this many consecutive skipped steps of one
            network; a step is skipped when its loss or gradients are not finite.
        mode_seeking: weight of the mode-seeking term (Mao et al., 2019, MSGAN): G's batch pairs each sample
            with one of the same label, and G also minimizes mode_seeking / (mean |G(z1, y) - G(z2, y)| /
            mean |z1 - z2| + 1e-5), which rewards samples of one class that differ (0: off).
        growing: progressive growing's schedule (sagan/tasks/growing.py) for a generator and discriminator
            built with the same `grow_from`: sample grids at the current stage's resolution, metrics (this
            module's forward) upsampled to the full one. None: no growing.
    """

    compiled_steps = ("_discriminator_forward", "_generator_forward")  # with `compile`: one graph each

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss = HingeLoss(),
        penalty: Penalty | None = None,
        penalty_every: int = 1,
        augment: nn.Module | None = None,
        lr_g: float = 1e-4,
        lr_d: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        n_critic: int = 1,
        ema_decay: float = 0.999,
        ema_start: int = 0,
        ema_uniform_start: int | None = None,
        ema_bn_samples: int = 0,
        lr_decay_start: int | None = None,
        grad_clip: float | None = None,
        grid_size: int = 64,
        compile: bool = False,
        compile_mode: str | None = None,
        compile_backend: str = "inductor",
        sync_batchnorm: bool = False,
        max_nonfinite: int = 10,
        mode_seeking: float = 0.0,
        growing: GrowthSchedule | None = None,
    ):
        super().__init__(
            generator, discriminator, lr_g=lr_g, lr_d=lr_d, betas=betas, n_critic=n_critic, grad_clip=grad_clip,
            grid_size=grid_size, max_nonfinite=max_nonfinite, ema_decay=ema_decay, ema_start=ema_start,
            ema_uniform_start=ema_uniform_start, lr_decay_start=lr_decay_start, not_saved=("augment", "growing"),
        )
        self.init_growing(growing)
        check_ranges(
            type(self).__name__, mode_seeking=(mode_seeking, "[0, inf)"), penalty_every=(penalty_every, "[1, inf)"),
            ema_bn_samples=(ema_bn_samples, "[0, inf)"),
        )
        self.check_compile_backend(type(self).__name__, compile_backend)
        self.mode_seeking = mode_seeking
        self.loss = loss
        self.penalty = penalty
        self.penalty_every = penalty_every
        self.augment = augment
        self.num_classes = generator.num_classes
        noise = torch.Generator().manual_seed(0)
        self.register_buffer("grid_z", torch.randn(grid_size, generator.z_dim, generator=noise))
        self.register_buffer("grid_y", torch.arange(grid_size) % max(self.num_classes, 1))
        self._gammas = [
            (f"attn/{prefix}.{name}.gamma", module.gamma)
            for prefix, net in (("g", generator), ("d", discriminator))
            for name, module in net.named_modules()
            if isinstance(module, SelfAttention2d)
        ]
        self.data_facts: dict = {}  # the data's class names and fingerprint, kept in checkpoints

    # ----------------------------------------------------------------------------------- sampling
    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] or None -> [N, C, H, W] images in [-1, 1] from the EMA generator
        return self.full_resolution(self.generator_ema(z, y if self.num_classes else None))

    def sample_noise(self, n: int, paired: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Noise and (for conditional models) uniformly drawn labels for `n` samples; `paired`: the second
        half of the batch repeats the first half's labels (the pairs of the mode-seeking term)."""
        z = torch.randn(n, self.generator.z_dim, device=self.device)
        y = torch.randint(0, self.num_classes, (n,), device=self.device) if self.num_classes else None
        if paired and y is not None:
            y = torch.cat([y[: n // 2], y[: n - n // 2]])
        return z, y

    def standing_inputs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G's inputs for recomputing the average's batch-norm statistics: `n` noises and labels of `generator`."""
        z = torch.randn(n, self.generator.z_dim, device=self.device, generator=generator)
        y = torch.randint(0, self.num_classes, (n,), device=self.device, generator=generator) if self.num_classes else None
        return z, y

    def fixed_samples(self) -> torch.Tensor:
        """EMA samples of the fixed noise (`grid_z`, `grid_y`), for the samples callback (growing: at the
        current stage's resolution)."""
        return self.generator_ema(self.grid_z, self.grid_y if self.num_classes else None)

    @property
    def discriminator_pack(self) -> int:
        """Images per discriminator logit (PacGAN packing; 1 for a plain discriminator)."""
        return getattr(self.discriminator, "pack", 1)

    # ------------------------------------------------------------------------------------- losses
    def critic(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The discriminator as both losses see it: augmentation (if any) in front of D."""
        if self.augment is not None:
            x = self.augment(x)
        return self._net("discriminator")(x, y if self.num_classes else None)

    def discriminator_loss(
        self, real: torch.Tensor, y_real: torch.Tensor | None, fake: torch.Tensor, y_fake: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on a real and a generated batch (one forward pass over both), plus its statistics."""
        loss, stats = self._critic_loss(real, y_real, fake, y_fake)
        return self._add_penalty(loss, stats, real, fake, y_real, y_fake)

    def generator_loss(
        self, fake: torch.Tensor, y_fake: torch.Tensor | None, real: torch.Tensor | None = None,
        y_real: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """G's loss on a generated batch; `real` is used only by losses that compare with real data."""
        with frozen_spectral_norm(self.discriminator):
            return self._adversarial_generator_loss(fake, y_fake, real, y_real)

    def _critic_loss(self, real, y_real, fake, y_fake) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The adversarial part of D's loss: one D pass over both batches."""
        y = torch.cat([y_real, y_fake]) if self.num_classes else None
        logits = self.critic(torch.cat([real, fake.detach()]), y)
        d_real, d_fake = logits.chunk(2)  # equal batches: also right for a packing D (one logit per group)
        stats = {"train/d_real": d_real.detach().mean(), "train/d_fake": d_fake.detach().mean()}
        return self.loss.discriminator(d_real, d_fake), stats

    def _add_penalty(
        self, loss, stats, real, fake, y_real, y_fake, weight: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`loss` plus `weight` times D's regularizer, if any: its own passes (exact gradient penalties on the
        math attention kernel, for their double backward; `approximation="finite_difference"` on the fused
        kernels)."""
        if self.penalty is None:
            return loss, stats
        with frozen_spectral_norm(self.discriminator):
            penalty = self.penalty(self.critic, real, fake, y_real, y_fake)
        return loss + weight * penalty, {**stats, "train/d_penalty": penalty.detach()}

    def penalty_turn(self, steps: int | None = None) -> bool:
        """Whether the discriminator step of the batch at optimizer step `steps` (default: `global_step`)
        adds the penalty: every `penalty_every`-th discriminator step, counted from the first."""
        steps = self.global_step if steps is None else steps
        d_steps = steps - steps // (self.n_critic + 1)  # the discriminator steps before this batch's
        return self.penalty is not None and d_steps % self.penalty_every == 0

    def _adversarial_generator_loss(self, fake, y_fake, real, y_real) -> torch.Tensor:
        d_fake = self.critic(fake, y_fake)
        d_real = self.critic(real, y_real).detach() if self.loss.generator_needs_real else None
        return self.loss.generator(d_fake, d_real)

    def mode_seeking_loss(self, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """MSGAN's term for a batch whose halves are pairs (sample i and i + n/2 share a label): the weight
        over the ratio of image distance to noise distance, so that G gains by spreading a class's samples."""
        half = fake.shape[0] // 2
        images = (fake[:half] - fake[half: 2 * half]).abs().mean()
        noise = (z[:half] - z[half: 2 * half]).abs().mean()
        return self.mode_seeking / (images / noise + 1e-5)

    # ------------------------------------------------------------------------ the two step graphs
    # Everything between drawing the noise and the backward pass of one network's step, as one function:
    # under `compile` each is one torch.compile graph (fullgraph), compiled once. Their inputs' grad modes,
    # `requires_grad` flags and the spectral norms' paused/iterating states are the same at every call,
    # so nothing recompiles; noise is drawn outside (eager), and the penalty's double backward runs
    # outside too (autograd.grad in a graph would break it).
    def _discriminator_forward(self, real, y_real, z, y_fake):
        """D step: G's samples without gradient, then D's adversarial loss on both batches."""
        with torch.no_grad():
            fake = self.generator(z, y_fake)
        loss, stats = self._critic_loss(real, y_real, fake, y_fake)
        return loss, stats, fake

    def _generator_forward(self, z, y_fake, real, y_real):
        """G step: G's samples through D (whose spectral norms are paused by the caller), plus the
        mode-seeking term when it is on."""
        fake = self._net("generator")(z, y_fake)
        loss = self._adversarial_generator_loss(fake, y_fake, real, y_real)
        return loss + self.mode_seeking_loss(fake, z) if self.mode_seeking > 0 else loss

    # ----------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        self.data_facts = data_facts(getattr(self.trainer, "datamodule", None)) or self.data_facts
        if stage == "fit":  # validation and tests compute no gradients: any DDP strategy does
            check_strategy(getattr(self.trainer, "strategy", None))
            batch_size = getattr(getattr(self.trainer, "datamodule", None), "batch_size", None)
            if batch_size is not None and batch_size % self.discriminator_pack:
                raise UsageError(
                    f"--data.batch_size={batch_size} must be divisible by the discriminator's "
                    f"pack={self.discriminator_pack}"
                )
        if self.hparams.sync_batchnorm and stage == "fit" and self.trainer.world_size > 1:
            if self.device.type == "cpu":  # torch's SyncBatchNorm would fail at the first forward pass
                raise UsageError("--model.sync_batchnorm=true needs GPUs; it cannot synchronize CPU processes")
            self.generator = nn.SyncBatchNorm.convert_sync_batchnorm(self.generator)
        if stage == "fit":
            self.compile_steps()

    def training_step(self, batch, batch_idx: int) -> None:
        real, y_real = batch
        y_real = y_real if self.num_classes else None
        n = real.shape[0]
        self.grow(n)
        real = self.growing_real(real)
        generator_turn = self.generator_turn()

        z, y_fake = self.sample_noise(n)
        with self.toggled_optimizer(self.optimizer("discriminator")), frozen_spectral_norm(self.generator):
            d_loss, stats, fake = self._graph("_discriminator_forward")(real, y_real, z, y_fake)
            if self.penalty_turn():
                d_loss, stats = self._add_penalty(d_loss, stats, real, fake, y_real, y_fake, self.penalty_every)
            self.take_step("discriminator", d_loss, "discriminator")
        self.log_dict({"train/d_loss": d_loss.detach(), **stats}, batch_size=n)  # the progress bar shows train/*loss

        if generator_turn:
            z, y_fake = self.sample_noise(n, paired=self.mode_seeking > 0)
            with self.toggled_optimizer(self.optimizer("generator")), frozen_spectral_norm(self.discriminator):
                g_loss = self._graph("_generator_forward")(z, y_fake, real, y_real)
                self.take_step("generator", g_loss, "generator")
            self.update_ema()
            self.log("train/g_loss", g_loss.detach(), batch_size=n)
            self._log_state()
        self.log_skipped_steps()

    def _log_state(self) -> None:
        """Learning rates and attention gates (no host sync: the logger reads them when it writes)."""
        self.log("train/lr_g", self.optimizer("generator").param_groups[0]["lr"])
        self.log("train/lr_d", self.optimizer("discriminator").param_groups[0]["lr"])
        for name, gamma in self._gammas:
            self.log(name, gamma.detach())

    def validation_step(self, batch, batch_idx: int) -> None:
        """D's mean logit on held-out real images and on EMA samples: a widening gap between
        `val/d_real` and `train/d_real` means the discriminator is memorizing the training set."""
        real, y_real = batch
        real = real[: real.shape[0] - real.shape[0] % self.discriminator_pack]  # whole groups for a packing D
        if real.shape[0] == 0:
            return
        y_real = y_real[: real.shape[0]] if self.num_classes else None
        z, y_fake = self.sample_noise(real.shape[0])
        fake = self(z, y_fake)
        n = real.shape[0]  # epoch means over all ranks' shards: one all-reduce at the end of validation
        self.log("val/d_real", self.critic(real, y_real).mean(), batch_size=n, sync_dist=True)
        self.log("val/d_fake", self.critic(fake, y_fake).mean(), batch_size=n, sync_dist=True)

    # ----------------------------------------------------------------------------- after training
    @property
    def class_names(self) -> list[str]:
        """The classes' names in index order (the data's, kept in checkpoints), else their indices."""
        names = self.data_facts.get("class_names") or []
        return list(names) if len(names) == self.num_classes else [str(i) for i in range(self.num_classes)]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["data_facts"] = self.data_facts
        self.save_growth(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.data_facts = checkpoint.get("data_facts") or {}
        self.load_growth(checkpoint)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """`sagan predict`: one EMA sample per image of the batch, with that image's label, from noise
        seeded by the batch index and the rank; images [N, C, H, W] in [-1, 1]."""
        _, y = batch
        rng = torch.Generator().manual_seed(batch_idx * self.trainer.world_size + self.global_rank)
        z = torch.randn(len(y), self.generator.z_dim, generator=rng).to(self.device)
        return self(z, y.to(self.device) if self.num_classes else None)

    def attention_panels(self) -> dict:
        """Attention panels (`sagan attention`) of G for the first fixed noise vector and of D for the
        first held-out image (the sample when there is none), for the samples callback."""
        y = self.grid_y[:1] if self.num_classes else None
        held_out = getattr(getattr(self._trainer, "datamodule", None), "val_set", None)
        real, real_y = held_out[0] if held_out is not None else (self(self.grid_z[:1], y)[0], y)
        real_y = torch.as_tensor(real_y, device=self.device).view(1) if self.num_classes else None
        with frozen_spectral_norm(self.discriminator):  # no power iteration outside D's own steps
            real = real[None].to(self.device)
            return image_gan_panels(self.generator_ema, self.discriminator, self.grid_z[:1], y, real, real_y)
