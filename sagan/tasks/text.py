"""The LightningModule that trains a text generator: maximum likelihood first, then adversarially.

One run has two phases, visible in the logs as `train/phase` (0, then 1):

1. Pre-training (`pretrain_steps` batches): maximum likelihood with teacher forcing, one step of the
   generator's own MLE optimizer per batch (`train/mle_loss`, in nats per token).
2. Adversarial training, as RelGAN: each batch is one discriminator step and every `n_critic`-th batch
   also one generator step. The discriminator sees real sequences as one-hot vectors and generated
   ones as Gumbel-softmax relaxations, whose temperature 1/beta falls as beta grows from 1 to `beta_max`
   over `beta_steps` adversarial generator iterations (`train/beta`). RSGAN is the default loss.

`trainer.global_step` counts optimizer steps: `pretrain_steps`, then `n_critic + 1` per adversarial
generator iteration. `generator_steps` counts generator updates of both phases, and the CLI's
`--g_iters` budgets the same count (`optimizer_steps`).

Validation (and `sagan test`) logs `<stage>/nll` (the generator's NLL per token of held-out sentences,
teacher forced; on the test split, the literature's NLL-test), and from `num_eval_samples` generated
sequences `<stage>/bleu2..5` against the held-out sentences, `<stage>/self_bleu2..5`, and
`<stage>/nll_oracle` when the data module has an oracle, plus a table of samples (`<stage>/samples`).

Robustness as the image GAN's, through the same mixins: each network its own DDP wrapper under several
processes (`PerNetworkDDP`: the MLE pass, D's passes and G's Gumbel-softmax sampling pass go through
it) with per-rank Gumbel noise; random states in checkpoints and fixed validation noise
(`TrainingRandomState`), so a resumed run continues exactly, across the phase boundary too; steps
with a non-finite loss or gradient skipped on the device and counted in `train/skipped_steps`, and a run
of `max_nonfinite` of them stops with a checkpoint (`SkipNonFiniteSteps`; MLE steps count as G's).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sagan.errors import check_ranges
from sagan.evaluation.recipe import make_recipe, record_recipe, tensor_fingerprint
from sagan.evaluation.text_metrics import text_metrics
from sagan.losses import AdversarialLoss, RelativisticLoss
from sagan.tasks.base import AdversarialTask
from sagan.training.distributed import check_strategy
from sagan.training.sample_grid import log_text_table
from sagan.visualization.panels import text_gan_panels
from sagan.vocabulary import Vocabulary, check_vocabulary


class TextGAN(AdversarialTask):
    """MLE pre-training, then adversarial training, of a token-sequence generator.

    Args:
        generator: network with `forward(tokens) -> logits [N, T, V]` and
            `sample(n, temperature, generator) -> (tokens [N, T], relaxed one-hot [N, T, V])`.
        discriminator: network mapping one-hot vectors `[N, T, V]` (or token ids `[N, T]`) to logits `[N]`.
        loss: the adversarial objective (RSGAN as RelGAN; `sagan.losses.HingeLoss` also works).
        vocabulary: the data's vocabulary (linked from the data); decodes samples, and a checkpoint
            trained on another vocabulary is refused.
        pretrain_steps: maximum-likelihood steps before adversarial training starts.
        lr_mle: learning rate of the generator during pre-training.
        lr_g: generator learning rate during adversarial training.
        lr_d: discriminator learning rate.
        betas: Adam betas of all three optimizers.
        n_critic: discriminator steps per adversarial generator step.
        beta_max: largest inverse temperature of the Gumbel-softmax (RelGAN: 100 or 1000).
        beta_steps: adversarial generator iterations over which beta grows from 1 to `beta_max`.
        beta_schedule: how beta grows: "exp" (beta_max ** (i / beta_steps), RelGAN's), "linear" or
            "constant" (beta_max from the start).
        grad_clip: clip each optimizer's gradient norm to this value (None or 0: no clipping).
        num_eval_samples: generated sequences scored at each validation (16 under `fast_dev_run`).
        grid_size: sentences in the fixed-noise sample table that callbacks write.
        compile: compile the MLE loss and the discriminator's loss with torch.compile, one graph each
            (fullgraph), compiled once per run (`AdversarialTask.compile_steps`); the generator's
            autoregressive sampling stays eager.
        compile_mode: torch.compile mode of the inductor backend.
        compile_backend: torch.compile backend: "inductor" (default), or "aot_eager" / "eager".
        max_nonfinite: stop the run (with a checkpoint) after this many consecutive skipped steps of one
            network; a step is skipped when its loss or gradients are not finite.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss = RelativisticLoss(),
        vocabulary: Vocabulary | None = None,
        pretrain_steps: int = 1000,
        lr_mle: float = 1e-3,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        n_critic: int = 1,
        beta_max: float = 100.0,
        beta_steps: int = 1000,
        beta_schedule: Literal["exp", "linear", "constant"] = "exp",
        grad_clip: float | None = 5.0,
        num_eval_samples: int = 500,
        grid_size: int = 16,
        compile: bool = False,
        compile_mode: str | None = None,
        compile_backend: str = "inductor",
        max_nonfinite: int = 10,
    ):
        super().__init__(
            generator, discriminator, lr_g=lr_g, lr_d=lr_d, betas=betas, n_critic=n_critic, grad_clip=grad_clip,
            grid_size=grid_size, max_nonfinite=max_nonfinite, not_saved=("vocabulary",),  # it has its own checkpoint entry
        )
        check_ranges(
            "TextGAN", pretrain_steps=(pretrain_steps, "[0, inf)"), lr_mle=(lr_mle, "[0, inf)"),
            beta_max=(beta_max, "[1, inf)"), beta_steps=(beta_steps, "[1, inf)"),
            num_eval_samples=(num_eval_samples, "[0, inf)"),
        )
        self.check_compile_backend("TextGAN", compile_backend)
        self.loss = loss
        self.vocabulary = vocabulary
        self.pretrain_steps = pretrain_steps
        self._references: list[torch.Tensor] = []
        self._recipes_recorded: set[str] = set()  # stages whose recipe went beside the logged numbers

    # ------------------------------------------------------------------------------ step counting
    optimizer_names = ("mle", "generator", "discriminator")  # the generator has two: MLE, then adversarial
    compiled_steps = ("mle_loss", "discriminator_loss")  # with `compile`: one graph each

    @staticmethod
    def optimizer_steps(g_iters: int, config) -> int:
        """Optimizer steps (`trainer.max_steps`) of a run of `g_iters` generator updates."""
        pretrain, n_critic = config.get("pretrain_steps", 1000), config.get("n_critic", 1)
        return min(g_iters, pretrain) + max(g_iters - pretrain, 0) * (n_critic + 1)

    @property
    def adversarial_steps(self) -> int:
        """Optimizer steps since pre-training ended."""
        return max(self.global_step - self.pretrain_steps, 0)

    @property
    def generator_steps(self) -> int:
        """Generator updates so far: MLE steps plus adversarial generator iterations."""
        return min(self.global_step, self.pretrain_steps) + self.adversarial_steps // (self.n_critic + 1)

    def inverse_temperature(self) -> float:
        """beta of the Gumbel-softmax at the current adversarial generator iteration."""
        progress = min(self.adversarial_steps // (self.n_critic + 1) / self.hparams.beta_steps, 1.0)
        beta_max = self.hparams.beta_max
        schedule = self.hparams.beta_schedule
        if schedule == "exp":
            return beta_max**progress
        if schedule == "linear":
            return 1.0 + (beta_max - 1.0) * progress
        return beta_max

    # ----------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
        """`[n, seq_len]` token ids drawn from the generator."""
        chunks = [
            self.generator.sample(min(batch_size, n - start), generator=generator)[0]
            for start in range(0, n, batch_size)
        ]
        return torch.cat(chunks)

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """The text of each sequence of `[N, T]` token ids (ids themselves without a vocabulary)."""
        if self.vocabulary is None:
            return [" ".join(map(str, row)) for row in tokens.tolist()]
        return [self.vocabulary.decode(row) for row in tokens.tolist()]

    def token_names(self, ids: torch.Tensor) -> list[str]:
        """Each token of a sequence `[T]` of ids as text (its id without a vocabulary)."""
        return [self.vocabulary.tokens[i] if self.vocabulary is not None else str(i) for i in ids.tolist()]

    def attention_panels(self) -> dict:
        """Token-by-token attention panels (`sagan attention`) of both networks for one sentence drawn
        from fixed noise, for the samples callback (without dropout: training's random streams stay put)."""
        training = self.training
        self.eval()
        try:
            tokens = self.sample(1, generator=torch.Generator(device=self.device).manual_seed(0))
            return text_gan_panels(self.generator, self.discriminator, tokens, self.token_names(tokens[0]))
        finally:
            self.train(training)

    def fixed_samples(self) -> list[str]:
        """`grid_size` sentences from fixed Gumbel noise, for the samples callback."""
        rng = torch.Generator(device=self.device).manual_seed(0)
        return self.decode(self.sample(self.hparams.grid_size, generator=rng))

    # ------------------------------------------------------------------------------------- losses
    def mle_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """The generator's negative log-likelihood per token of real sequences (teacher forcing)."""
        logits = self._net("generator")(tokens)
        return F.cross_entropy(logits.flatten(0, 1), tokens.flatten())

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on real token ids `[N, T]` and generated one-hot relaxations `[N, T, V]`."""
        discriminator = self._net("discriminator")
        d_real = discriminator(real)
        d_fake = discriminator(fake.detach())
        stats = {"train/d_real": d_real.detach().mean(), "train/d_fake": d_fake.detach().mean()}
        return self.loss.discriminator(d_real, d_fake), stats

    def generator_loss(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """G's loss on generated relaxations; `real` is used only by losses that compare with real data."""
        discriminator = self._net("discriminator")
        d_fake = discriminator(fake)
        d_real = discriminator(real).detach() if self.loss.generator_needs_real else None
        return self.loss.generator(d_fake, d_real)

    # ----------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        return self.adam(self.generator, self.hparams.lr_mle), *super().configure_optimizers()

    def setup(self, stage: str) -> None:
        check_strategy(getattr(self.trainer, "strategy", None))
        if stage == "fit":
            self.compile_steps()

    def training_step(self, batch, batch_idx: int) -> None:
        (real,) = batch
        if self.global_step < self.pretrain_steps:
            self._mle_step(real)
        else:
            self._adversarial_step(real)
        self.log_skipped_steps()

    def _mle_step(self, real: torch.Tensor) -> None:
        with self.toggled_optimizer(self.optimizer("mle")):
            mle_loss = self._graph("mle_loss")(real)
            self.take_step("mle", mle_loss, "generator")
        n = real.shape[0]
        self.log_dict({"train/mle_loss": mle_loss.detach(), "train/phase": 0.0}, batch_size=n)

    def _adversarial_step(self, real: torch.Tensor) -> None:
        n = real.shape[0]
        generator_turn = self.generator_turn(self.adversarial_steps)
        temperature = 1.0 / self.inverse_temperature()
        with torch.no_grad():
            _, fake = self.generator.sample(n, temperature)
        with self.toggled_optimizer(self.optimizer("discriminator")):
            d_loss, stats = self._graph("discriminator_loss")(real, fake)
            self.take_step("discriminator", d_loss, "discriminator")
        self.log_dict({"train/d_loss": d_loss.detach(), "train/phase": 1.0, **stats}, batch_size=n)
        if generator_turn:
            with self.toggled_optimizer(self.optimizer("generator")):
                _, fake = self._net("generator", "sample")(n, temperature)  # through G's DDP wrapper, if any
                g_loss = self.generator_loss(fake, real)
                self.take_step("generator", g_loss, "generator")
            self.log_dict({"train/g_loss": g_loss.detach(), "train/beta": 1.0 / temperature}, batch_size=n)

    # --------------------------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()  # fixed noise for the samples scored at the end
        self._references = []

    def on_test_epoch_start(self) -> None:
        self._references = []

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._sample_metrics("val")
        super().on_validation_epoch_end()  # back to the training streams

    def on_test_epoch_end(self) -> None:
        self._sample_metrics("test")

    def _evaluation_step(self, batch, stage: str) -> None:
        (tokens,) = batch
        self.log(f"{stage}/nll", self.mle_loss(tokens), batch_size=tokens.shape[0], sync_dist=True)
        self._references.append(tokens.cpu())

    def _ids(self, tokens: torch.Tensor) -> list[list[int]]:
        rows = tokens.tolist()
        return rows if self.vocabulary is None else [self.vocabulary.strip(row) for row in rows]

    def _gathered_references(self) -> torch.Tensor:
        """The held-out sentences of this evaluation, from every rank's share (in the loader's order)."""
        references = torch.cat(self._references)
        if self.trainer.world_size == 1:
            return references
        # DistributedSampler deals the data round-robin: rank r holds items r, r + world, ...
        gathered = self.all_gather(references.to(self.device))  # [world, M, T]
        return gathered.transpose(0, 1).flatten(0, 1).cpu()

    def _sample_metrics(self, stage: str) -> None:
        """BLEU, Self-BLEU and NLL-oracle of generated sequences, and a table of them, from rank 0."""
        if not self._references:
            return
        n = min(self.hparams.num_eval_samples, 16) if self.trainer.fast_dev_run else self.hparams.num_eval_samples
        if n < 2:
            return
        references = self._gathered_references()  # every rank takes part in the gathering
        self._references = []
        if not self.trainer.is_global_zero:
            return
        samples = self.sample(n)
        metrics = text_metrics(self._ids(samples), self._ids(references))
        metrics = {f"{stage}/{name}": value for name, value in metrics.items()}
        oracle = getattr(self.trainer.datamodule, "oracle", None)
        rows = [[text] for text in self.decode(samples[: self.hparams.grid_size])]
        if oracle is not None:
            nll = oracle.to(self.device).nll(samples)
            metrics[f"{stage}/nll_oracle"] = nll.mean().item()
            rows = [[text, round(value, 3)] for (text,), value in zip(rows, nll.tolist())]
        self.log_dict(metrics, rank_zero_only=True)
        if stage not in self._recipes_recorded and not self.trainer.sanity_checking:  # once per run and stage
            seed = 0 if stage == "val" else torch.initial_seed()  # validation samples are drawn under seed 0
            recipe = make_recipe(None, self.trainer.datamodule, stage, len(references), n, seed=seed, ema=False,
                                 real_set=tensor_fingerprint(references))
            record_recipe(self.trainer, f"{stage}_recipe", recipe)
            self._recipes_recorded.add(stage)
        columns = ["sample", "nll_oracle"] if oracle is not None else ["sample"]
        log_text_table(self.loggers, f"{stage}/samples", columns, rows)

    # ------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.vocabulary is not None:
            checkpoint["vocabulary"] = self.vocabulary.to_dict()

    def check_init_source(self, checkpoint: dict) -> None:
        """`sagan fit --init_from`: refuses a checkpoint trained on another vocabulary (its token rows would
        mean other tokens)."""
        saved = checkpoint.get("vocabulary")
        if saved is not None and self.vocabulary is not None:
            check_vocabulary(Vocabulary.from_dict(saved), self.vocabulary, "the checkpoint")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuses, before any weight is loaded, a checkpoint trained on another vocabulary; a module built
        without one (`sagan sample`) takes the checkpoint's."""
        saved = checkpoint.get("vocabulary")
        if saved is not None and self.vocabulary is not None:
            check_vocabulary(Vocabulary.from_dict(saved), self.vocabulary, "the checkpoint")
        elif saved is not None:
            self.vocabulary = Vocabulary.from_dict(saved)
        super().on_load_checkpoint(checkpoint)
