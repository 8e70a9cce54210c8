"""The moving average of a generator's weights, the network that samples and metrics come from: its update
(`ema_update`) and its batch-norm statistics (`standing_statistics`, `StandingStatistics`)."""

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


def batch_norms(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The network's batch-norm layers (BatchNorm1d/2d/3d, SyncBatchNorm) that keep running statistics."""
    return [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def standing_statistics(network: nn.Module, batches) -> None:
    """Recomputes the running statistics of the network's batch norms as the plain mean, over `batches` (tuples
    of the network's inputs), of each batch's statistics (BigGAN's standing statistics, SWA's `update_bn`); only
    the batch norms run in training mode, so nothing else (spectral norms' power iterations) changes."""
    norms = batch_norms(network)
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
        m.train()
    try:
        for inputs in batches:
            network(*inputs)
    finally:
        for m, (momentum, training) in zip(norms, saved):
            m.momentum = momentum
            m.train(training)


class StandingStatistics:
    """Mixin of a task whose generator's average (`generator_ema`) has batch norms. Its weights are an average
    but the running statistics `ema_update` copies are the generator's: the mean and variance of other weights.
    With the hyper-parameter `ema_bn_samples` > 0 the average's statistics are its own: recomputed by
    `standing_statistics` on `ema_bn_samples` fixed noise samples (batches of `STANDING_BATCH`, their own seed:
    the training streams are untouched) wherever training reads the average: at each validation, before sample
    grids (`refresh_average_statistics`) and in every checkpoint, so `sagan sample`, the benches and exports
    use them too. The next generator step copies the generator's again; nothing reads them in between. The
    task gives the generator's inputs: `standing_inputs(n, generator) -> tuple`.
    """

    STANDING_BATCH = 64
    STANDING_SEED = 20181  # any fixed seed: the same noise at every recomputation

    def refresh_average_statistics(self) -> bool:
        """Recomputes the average's batch-norm statistics (with `ema_bn_samples` > 0 and batch norms in it);
        returns whether it did."""
        samples = self.hparams.get("ema_bn_samples") or 0
        if not samples or self.generator_ema is None or not batch_norms(self.generator_ema):
            return False
        generator = torch.Generator(device=self.device).manual_seed(self.STANDING_SEED)
        sizes = [min(self.STANDING_BATCH, samples - start) for start in range(0, samples, self.STANDING_BATCH)]
        standing_statistics(self.generator_ema, (self.standing_inputs(n, generator) for n in sizes))
        return True

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.refresh_average_statistics()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if not self.refresh_average_statistics():
            return
        state = checkpoint["state_dict"]
        for name, buffer in self.generator_ema.named_buffers():
            if f"generator_ema.{name}" in state:
                state[f"generator_ema.{name}"] = buffer.detach().clone()
