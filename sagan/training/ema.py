"""Exponential moving average of a generator's weights, the network that samples and metrics come from."""

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (batch-norm statistics,
    spectral-norm vectors) are copied."""
    ema_params = [p for p in ema.parameters()]
    params = [p.detach() for p in model.parameters()]
    if decay == 0.0:
        torch._foreach_copy_(ema_params, params)
    else:
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    ema_buffers = [b for b in ema.buffers() if b.is_floating_point()]
    if ema_buffers:
        torch._foreach_copy_(ema_buffers, [b for b in model.buffers() if b.is_floating_point()])
