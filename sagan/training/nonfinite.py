"""Skipping optimizer steps whose loss or gradients are not finite, without a host synchronization.

A NaN image, an exploding logit or an overflow would otherwise write NaN into the weights and the Adam
moments, and the run would go on training garbage. `found` decides on the device whether a step is bad:
its loss, or the sum of its gradients' norms (taken after DDP's all-reduce, so all ranks agree), is not
finite. Fused Adam takes the decision as `found_inf`, the tensor GradScaler uses, and then leaves the
parameters, moments and step count as they were. `NonFiniteSteps` counts skipped steps in device tensors.
`SkipNonFiniteSteps` is the LightningModule side (a mixin of both GAN modules): the optimizer step, the
periodic check that stops a run, and the counters in checkpoints.

The trade-off: nothing here is read on the host during a step, so a GPU never waits for the CPU; the
counters are read every `log_every_n_steps` batches instead, so a run that has reached its limit of
consecutive skipped steps may go on for up to that many more batches (all skipped) before it stops.
"""

import torch
from torch import nn

from sagan.errors import TrainingStopped
from sagan.training.resume import save_last


def found_nonfinite(loss: torch.Tensor, optimizer: torch.optim.Optimizer, gradients: bool = True) -> torch.Tensor:
    """1.0 when `loss` or (with `gradients`) any gradient of `optimizer`'s parameters is not finite, else 0.0,
    as a 0-dim float tensor on the loss's device. One fused norm kernel over the gradients, no host sync."""
    total = loss.detach().float()
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if gradients and grads:
        total = total + torch.stack(torch._foreach_norm(grads)).float().sum()
    return (~torch.isfinite(total)).float()


class NonFiniteSteps(nn.Module):
    """Skipped steps per network, kept on the device: consecutive ones, all of them, and whether a run of
    `limit` consecutive skipped steps has happened (sticky until read by `tripped`).

    Args:
        networks: networks that take steps (G and D: 2).
        limit: consecutive skipped steps of one network after which `tripped` reports it.
    """

    def __init__(self, networks: int, limit: int):
        super().__init__()
        if limit < 1:
            raise ValueError(f"max_nonfinite must be >= 1, got {limit}")
        self.limit = limit
        self.register_buffer("consecutive", torch.zeros(networks), persistent=False)
        self.register_buffer("total", torch.zeros(()), persistent=False)
        self.register_buffer("reached", torch.zeros(networks, dtype=torch.bool), persistent=False)

    @torch.no_grad()
    def record(self, net: int, found: torch.Tensor) -> None:
        """Counts a step of network `net`; `found` (1.0 or 0.0) says whether it was skipped."""
        run = self.consecutive[net]
        run.mul_(found).add_(found)  # +1 after a skipped step, back to 0 after a good one
        self.total.add_(found)
        self.reached[net].logical_or_(run >= self.limit)

    def tripped(self) -> list[bool]:
        """Per network, whether `limit` consecutive steps were skipped (reads the device: call sparingly)."""
        return self.reached.tolist()

    def state(self) -> dict[str, torch.Tensor]:
        return {"run": self.consecutive.cpu(), "total": self.total.cpu()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.consecutive.copy_(state["run"])
        self.total.copy_(state["total"])


class SkipNonFiniteSteps:
    """Mixin of a LightningModule (manual optimization, fused Adam optimizers) whose optimizer steps go
    through `_step`, and whose `__init__` sets `self.nonfinite = NonFiniteSteps(2, max_nonfinite)`.

    Networks are counted by index of `network_names`: 0 the discriminator, 1 the generator (all of its optimizers;
    `AdversarialTask.take_step` names them). After
    `limit` consecutive skipped steps of one network the run saves `last.ckpt` and stops with one line
    and exit status 3. The hooks call `super()`, so a module that overrides one calls `super()` too.
    """

    network_names = ("discriminator", "generator")
    _scaled_gradients = False  # under fp16's GradScaler, which skips overflowing steps itself
    _train_batches = 0

    def _step(self, optimizer, loss: torch.Tensor, net: int) -> None:
        """Backward pass and optimizer step of network `net`, skipped on the device when the loss or a
        gradient is not finite. Under fp16's GradScaler only the loss is checked here."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        found = found_nonfinite(loss, optimizer, gradients=not self._scaled_gradients)
        optimizer.optimizer.found_inf = found  # fused Adam leaves weights, moments and step count alone
        optimizer.step()
        self.nonfinite.record(net, found)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self._scaled_gradients = getattr(self.trainer.precision_plugin, "scaler", None) is not None

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        self._train_batches += 1
        if self._train_batches % max(self.trainer.log_every_n_steps, 1):
            return
        # The one host read of the skip counters, every log_every_n_steps batches; any rank stops all.
        tripped = self.nonfinite.tripped()
        if not self.trainer.strategy.reduce_boolean_decision(any(tripped), all=False):
            return
        nets = " and ".join(name for name, hit in zip(self.network_names, tripped) if hit)
        path = save_last(self.trainer)
        raise TrainingStopped(
            f"error: {self.nonfinite.limit} consecutive {nets or 'skipped'} steps with a non-finite loss or "
            f"gradient{'' if nets else ' on another rank'} by generator iteration {self.generator_steps}; saved the "
            f"last finite state to {path} (lower the learning rates, set --model.grad_clip, or check the data)",
            exit_code=3,
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["nonfinite"] = self.nonfinite.state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "nonfinite" in checkpoint:
            self.nonfinite.load_state(checkpoint["nonfinite"])
