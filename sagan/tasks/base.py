"""What every adversarial task shares: `AdversarialTask`, the base of `ImageGAN`, `RepairGAN` and `TextGAN`
(and through `ImageGAN` of `VideoGAN` and `SpeechGAN`).

It owns the two named networks (`generator`, `discriminator`) and, where the task keeps one, the exponential
moving average of the generator (`generator_ema`, used for samples, repairs and metrics); their Adam
optimizers (fused: a non-finite step is skipped on the device); the discriminator / generator schedule
(`n_critic` discriminator steps per generator step, `generator_turn`); step counting in generator iterations
(`generator_steps`, `optimizer_steps` for `--g_iters`); the range checks of the shared options; non-finite
skipping (`take_step`) and its logged counter; compiling the task's step functions (`compiled_steps`); per-network DDP wrappers and exact resume (the mixins). A task
keeps what is its own: its losses (`discriminator_loss`, `generator_loss`, pure methods), its
`training_step` (which only toggles, steps and logs), samples and validation.

Logged names are the same for every task: `train/d_loss`, `train/g_loss` (and the task's own `train/...`
statistics), `train/skipped_steps`.
"""

import copy
import warnings
from abc import ABC, abstractmethod

import lightning as L
import torch
from torch import nn

from sagan.errors import check_ranges
from sagan.training.distributed import PerNetworkDDP
from sagan.training.ema import ema_update
from sagan.training.nonfinite import NonFiniteSteps, SkipNonFiniteSteps
from sagan.training.resume import TrainingRandomState


class AdversarialTask(PerNetworkDDP, SkipNonFiniteSteps, TrainingRandomState, L.LightningModule, ABC):
    """Base of the adversarial tasks (see the module's docstring). A subclass calls
    `super().__init__(generator, discriminator, ...)` first, with its shared options, and lists in
    `not_saved` the constructor arguments that are objects rather than configuration (they are rebuilt
    from the config the CLI saves, not pickled into the hyper-parameters).

    Args:
        generator: the generator network.
        discriminator: the discriminator network.
        lr_g: generator learning rate, >= 0.
        lr_d: discriminator learning rate, >= 0.
        betas: Adam betas of every optimizer, each in [0, 1).
        n_critic: discriminator steps per generator step, >= 1.
        grad_clip: clip each network's gradient norm to this value (None or 0: no clipping).
        grid_size: samples in the fixed sample grid, >= 1.
        max_nonfinite: stop the run (with a checkpoint) after this many consecutive skipped steps of one network.
        ema_decay: decay of the generator's moving average, in [0, 1) (None: the task keeps no average).
        ema_start: generator iterations during which the average simply copies the generator.
        ema_uniform_start: from this generator iteration on (>= `ema_start`), the average turns uniform
            (Polyak averaging, as SWA): the mean of the average at that iteration and every generator after it.
            None: exponential to the end.
        lr_decay_start: from this generator iteration on, both learning rates fall linearly to zero at the run's
            last iteration (`--g_iters`); None: constant rates. The rate of a step is a function of the step, so a
            resumed run continues the same schedule.
        not_saved: constructor arguments left out of the saved hyper-parameters when they are objects.
    """

    #: the optimizers `configure_optimizers` returns, by name, in order
    optimizer_names: tuple[str, ...] = ("generator", "discriminator")
    #: the task's step functions that its `compile` option turns into one torch.compile graph each (`_graph`)
    compiled_steps: tuple[str, ...] = ()

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        lr_g: float,
        lr_d: float,
        betas: tuple[float, float],
        n_critic: int,
        grad_clip: float | None,
        grid_size: int,
        max_nonfinite: int,
        ema_decay: float | None = None,
        ema_start: int = 0,
        ema_uniform_start: int | None = None,
        lr_decay_start: int | None = None,
        not_saved: tuple[str, ...] = (),
    ):
        super().__init__()
        with warnings.catch_warnings():  # networks built outside the CLI are saved in the state dict
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters(ignore=["not_saved"])  # the arguments of every __init__ up the chain
        for name in ("generator", "discriminator", *not_saved):  # objects; a config from the CLI stays
            if name in self.hparams and not isinstance(self.hparams[name], (dict, str, type(None))):
                del self.hparams[name]
        check_ranges(
            type(self).__name__, lr_g=(lr_g, "[0, inf)"), lr_d=(lr_d, "[0, inf)"), betas=(betas, "[0, 1)"),
            n_critic=(n_critic, "[1, inf)"), grad_clip=(grad_clip, "[0, inf)"), grid_size=(grid_size, "[1, inf)"),
            max_nonfinite=(max_nonfinite, "[1, inf)"), ema_decay=(ema_decay, "[0, 1)"), ema_start=(ema_start, "[0, inf)"),
            lr_decay_start=(lr_decay_start, "[0, inf)"),
            ema_uniform_start=(ema_uniform_start, f"[{ema_start}, inf)"),  # ema_start is checked first
        )
        if ema_uniform_start is not None and ema_decay is None:
            raise ValueError(f"{type(self).__name__}: ema_uniform_start needs a moving average (ema_decay), got None")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = None if ema_decay is None else copy.deepcopy(generator).requires_grad_(False).eval()
        self.n_critic = n_critic
        self.data_parallel: dict[str, nn.Module] = {}  # per-network DDP wrappers, see sagan/training/distributed.py
        self.nonfinite = NonFiniteSteps(networks=len(self.network_names), limit=max_nonfinite)
        self._compiled: dict = {}  # the compiled step graphs, see `compile_steps`

    def train(self, mode: bool = True):
        super().train(mode)
        if self.generator_ema is not None:
            self.generator_ema.eval()  # the average is only ever used for inference
        return self

    # ------------------------------------------------------------------------------ step counting
    @property
    def generator_steps(self) -> int:
        """Generator iterations done so far."""
        return self.global_step // (self.n_critic + 1)

    @staticmethod
    def optimizer_steps(g_iters: int, config) -> int:
        """Optimizer steps (`trainer.max_steps`) of a run of `g_iters` generator iterations."""
        return g_iters * (config.get("n_critic", 1) + 1)

    def generator_turn(self, steps: int | None = None) -> bool:
        """Whether the batch at optimizer step `steps` (default: `global_step`) also takes a generator step:
        every `n_critic`-th batch, after its discriminator step."""
        steps = self.global_step if steps is None else steps
        return steps % (self.n_critic + 1) == self.n_critic - 1

    # ------------------------------------------------------------------------------------ compile
    @staticmethod
    def check_compile_backend(owner: str, backend: str) -> None:
        """Refuses a torch.compile backend this PyTorch does not have (at construction, in one line)."""
        if backend not in torch._dynamo.list_backends(exclude_tags=()):
            raise ValueError(
                f"{owner}: compile_backend must be one of {torch._dynamo.list_backends(exclude_tags=())}, got {backend!r}"
            )

    def compile_steps(self) -> None:
        """With the task's `compile` option on, each of `compiled_steps` becomes one torch.compile graph
        (fullgraph: a graph break is an error, not a silent slowdown), compiled once per run; the training step
        runs them through `_graph(name)`. Options: `compile_mode` (inductor's mode, e.g. "reduce-overhead" for
        CUDA graphs) and `compile_backend` ("inductor", or "aot_eager" / "eager" to check graph capture)."""
        if not self.hparams.get("compile") or self._compiled:
            return
        backend = self.hparams.get("compile_backend", "inductor")
        options = dict(fullgraph=True, backend=backend)
        if backend == "inductor":
            options["mode"] = self.hparams.get("compile_mode")
        self._compiled = {name: torch.compile(getattr(self, name), **options) for name in self.compiled_steps}

    def _graph(self, name: str):
        """Step function `name`: its compiled graph under `compile`, else the method itself."""
        return self._compiled.get(name) or getattr(self, name)

    # --------------------------------------------------------------------------------- optimizers
    def adam(self, network: nn.Module, lr: float) -> torch.optim.Adam:
        """Fused Adam (one kernel per step; it takes `found_inf` to skip a non-finite step on the device)."""
        return torch.optim.Adam(network.parameters(), lr=lr, betas=tuple(self.hparams.betas), fused=True)

    def configure_optimizers(self):
        return self.adam(self.generator, self.hparams.lr_g), self.adam(self.discriminator, self.hparams.lr_d)

    def optimizer(self, name: str):
        """The optimizer called `name` in `optimizer_names` (Lightning's wrapper of it)."""
        return self.optimizers()[self.optimizer_names.index(name)]

    def lr_factor(self) -> float:
        """The share of its configured learning rate that a step of the current generator iteration takes: 1
        before `lr_decay_start`, then falling linearly to 0 at the run's end (`trainer.max_steps`; 1 without one)."""
        start = self.hparams.get("lr_decay_start")
        total = self.trainer.max_steps // (self.n_critic + 1) if self.trainer.max_steps > 0 else None
        if start is None or total is None or self.generator_steps < start:
            return 1.0
        return max(total - self.generator_steps, 0) / max(total - start, 1)

    def take_step(self, optimizer_name: str, loss: torch.Tensor, network: str) -> None:
        """Backward pass and step of one optimizer of `network` ("generator" or "discriminator"), skipped on the
        device when the loss or a gradient is not finite; with `lr_decay_start`, the generator's and the
        discriminator's optimizers step at their scheduled rate (`lr_factor`)."""
        optimizer = self.optimizer(optimizer_name)
        rate = {"generator": "lr_g", "discriminator": "lr_d"}.get(optimizer_name)
        if self.hparams.get("lr_decay_start") is not None and rate is not None:
            for group in optimizer.param_groups:
                group["lr"] = self.hparams[rate] * self.lr_factor()
        self._step(optimizer, loss, self.network_names.index(network))

    def update_ema(self) -> None:
        """The generator's moving average after a generator step: a plain copy for the first `ema_start`, then
        exponential, from `ema_uniform_start` on uniform (step k after it weighs the generator 1 / (k + 1))."""
        steps, uniform_start = self.generator_steps, self.hparams.get("ema_uniform_start")
        if steps <= self.hparams.ema_start:
            decay = 0.0
        elif uniform_start is not None and steps > uniform_start:
            decay = 1.0 - 1.0 / (steps - uniform_start + 1)
        else:
            decay = self.hparams.ema_decay
        ema_update(self.generator_ema, self.generator, decay)

    @abstractmethod
    def training_step(self, batch, batch_idx: int) -> None:
        """One batch: the discriminator's step and, on the generator's turn, the generator's; only toggles,
        steps (`take_step`) and logs: the losses are the task's pure methods."""

    def log_skipped_steps(self) -> None:
        """`train/skipped_steps`: the steps skipped so far (no host sync: the logger reads it when it writes)."""
        self.log("train/skipped_steps", self.nonfinite.total.clone())
