"""Skipping optimizer steps whose loss or gradients are not finite, without a host synchronization.

A NaN image, an exploding logit or an overflow would otherwise write NaN into the weights and the Adam
moments, and the run would go on training garbage. `found` decides on the device whether a step is bad:
its loss, or the sum of its gradients' norms (taken after DDP's all-reduce, so all ranks agree), is not
finite. Fused Adam takes the decision as `found_inf`, the tensor GradScaler uses, and then leaves the
parameters, moments and step count as they were. `NonFiniteSteps` counts skipped steps in device tensors.

The trade-off: nothing here is read on the host during a step, so a GPU never waits for the CPU; the
counters are read every `log_every_n_steps` batches instead, so a run that has reached its limit of
consecutive skipped steps may go on for up to that many more batches (all skipped) before it stops.
"""

import torch
from torch import nn


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
