"""Data-parallel training of the GAN modules (image `GAN`, text `TextGAN`) over several processes.

Why not Lightning's plain DDP: `DDPStrategy` wraps the whole LightningModule in one
`DistributedDataParallel`, whose single reducer expects a gradient for every parameter in every backward
pass. A GAN's discriminator step gives gradients to D only and its generator step to G only, so that
reducer either fails ("Expected to have finished reduction in the prior iteration") or needs
`find_unused_parameters=True`, which searches the autograd graph after every forward pass and still
all-reduces the idle network's buckets: about twice the communication of what a step needs.

`GANDDPStrategy` gives each trained network its own `DistributedDataParallel` (its own reducer and
gradient buckets) and leaves the LightningModule unwrapped. The module (`PerNetworkDDP`, a mixin of both
GAN modules) sends every pass that builds a graph through the wrapper of the network it belongs to, so
each backward pass all-reduces exactly the gradients of the network being stepped, with
`find_unused_parameters=False`:

- D step: G runs under no_grad on the bare module; D runs through its wrapper and every D parameter
  gets a gradient; the penalty's extra forward passes are fine (one reduction per backward pass).
- G step: G runs through its wrapper. D's parameters have requires_grad=False (`toggled_optimizer`), so no
  D gradient hook fires: D's reducer sees no work and is reset by the next D step. Toggling also skips
  computing D's weight gradients that the G step would throw away.
- `static_graph` stays off: D's reducer sees forward passes with (D step) and without (G step) gradient
  work, which is exactly what a static graph forbids; it would only save a graph search we do not do.
- A pass need not be `forward`: each wrapper holds its network inside `NetworkCalls`, whose forward runs
  any method of it, so the text generator's `sample` (its relaxed one-hot vectors carry gradient) and its
  maximum-likelihood `forward` reduce G's gradients alike.

Outside the GAN modules (no `distribute` method) the strategy is Lightning's DDP unchanged. `sagan fit`
uses it whenever Lightning would choose DDP (`--trainer.devices=N`, `--trainer.num_nodes=M`,
`--trainer.strategy=ddp`), see `plain_ddp_is_gan_ddp`.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook, _sync_module_states
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sagan.errors import UsageError

# Lightning's registry names that mean "DDP, find_unused_parameters=False", with their start methods.
PLAIN_DDP = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}


class NetworkCalls(nn.Module):
    """A network whose `forward(*args, method=name, **kwargs)` runs the network's method `name`.

    DDP sees only passes through its wrapper's `forward`. Wrapping this instead of the network lets any
    of the network's methods build a graph whose backward pass reduces the network's gradients. The
    network is its only child, so the wrapper covers exactly the network's parameters and buffers.

    Args:
        network: the network to call.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, *args: Any, method: str = "forward", **kwargs: Any) -> Any:
        # the shapes of the method called; `forward` goes through the network's __call__ (hooks, compile)
        if method == "forward":
            return self.network(*args, **kwargs)
        return getattr(self.network, method)(*args, **kwargs)


class PerNetworkDDP:
    """Mixin of a LightningModule whose trained networks each get their own DDP wrapper.

    `GANDDPStrategy` calls `distribute(wrap)`; the module then runs every pass that builds a graph
    through `_net(name)` (or `_net(name, method)`), which is the wrapper when there is one and gradients
    are on, and the bare network otherwise. The module sets `data_parallel = {}` in its `__init__`.
    """

    #: attribute names of the networks that optimizers train
    trained_networks = ("generator", "discriminator")
    data_parallel: dict[str, nn.Module]

    def distribute(self, wrap: Callable[[nn.Module], nn.Module] | None) -> None:
        """Gives each trained network its own data-parallel wrapper (None removes them)."""
        self.data_parallel = (
            {} if wrap is None else {name: wrap(NetworkCalls(getattr(self, name))) for name in self.trained_networks}
        )

    def _net(self, name: str, method: str = "forward") -> Callable[..., Any]:
        """Network `name`'s `method` for one pass: through its DDP wrapper when the pass builds a graph,
        so that the backward pass reduces that network's gradients; the bare network's otherwise."""
        if self.data_parallel and torch.is_grad_enabled():
            return partial(self.data_parallel[name], method=method)
        network = getattr(self, name)
        return network if method == "forward" else getattr(network, method)


class GANDDPStrategy(DDPStrategy):
    """DDP with one `DistributedDataParallel` per trained network of a module that has `distribute(wrap)`.

    Takes the arguments of Lightning's `DDPStrategy` (`find_unused_parameters`, `gradient_as_bucket_view`,
    `process_group_backend`, `timeout`, `start_method`, ...); DDP keyword arguments go to each wrapper.
    """

    strategy_name = "gan_ddp"

    def _setup_model(self, model: nn.Module) -> nn.Module:
        distribute = getattr(model, "distribute", None)
        if distribute is None:
            return super()._setup_model(model)
        if self._ddp_kwargs.get("static_graph"):
            raise ValueError("GANDDPStrategy cannot use static_graph: D's reducer sees passes with and without work")
        _sync_module_states(model)  # every rank starts from rank 0's networks, average and buffers
        device_ids = self.determine_ddp_device_ids()
        # like Lightning: build the wrappers on a side stream (https://pytorch.org/docs/stable/notes/cuda.html)
        stream = torch.cuda.stream(torch.cuda.Stream()) if device_ids is not None else nullcontext()

        def wrap(net: nn.Module) -> DistributedDataParallel:
            with stream:
                return DistributedDataParallel(net, device_ids=device_ids, **self._ddp_kwargs)

        distribute(wrap)
        return model

    def _register_ddp_hooks(self) -> None:
        if isinstance(self.model, DistributedDataParallel):
            return super()._register_ddp_hooks()
        if self.root_device.type == "cuda" and self._ddp_comm_hook is not None:
            for wrapper in getattr(self.model, "data_parallel", {}).values():
                _register_ddp_comm_hook(
                    model=wrapper, ddp_comm_state=self._ddp_comm_state, ddp_comm_hook=self._ddp_comm_hook,
                    ddp_comm_wrapper=self._ddp_comm_wrapper,
                )

    def teardown(self) -> None:
        module = self.lightning_module
        if module is not None and hasattr(module, "distribute"):
            module.distribute(None)
        super().teardown()


@contextmanager
def plain_ddp_is_gan_ddp() -> Iterator[None]:
    """Inside the block, Lightning's strategy names "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook" (and
    "auto" on several devices, which resolves to "ddp") build a `GANDDPStrategy` with the same start method.

    `sagan fit` builds its Trainer inside this block, so `--trainer.devices=4` just works; the explicit
    `*_find_unused_parameters_true` names keep Lightning's whole-module DDP.
    """
    saved = {name: StrategyRegistry[name] for name in PLAIN_DDP if name in StrategyRegistry}
    try:
        for name, start_method in PLAIN_DDP.items():
            StrategyRegistry.register(
                name, GANDDPStrategy, description=f"GAN DDP, start method {start_method}", override=True,
                start_method=start_method,
            )
        yield
    finally:
        for name in PLAIN_DDP:
            StrategyRegistry.pop(name, None)
        StrategyRegistry.update(saved)


def check_strategy(strategy: object) -> None:
    """Refuses, at start-up, Lightning's whole-module DDP without unused-parameter search (e.g. a
    `class_path: DDPStrategy` in a config): it would fail at the GAN's first step."""
    if type(strategy) is DDPStrategy and not strategy._ddp_kwargs.get("find_unused_parameters"):
        raise UsageError(
            "Lightning's DDPStrategy gives G and D one gradient reducer, which fails at a GAN's first step: "
            "use --trainer.strategy=ddp (sagan.training.distributed.GANDDPStrategy, one reducer per network)"
        )


def rank_seed(seed: int, rank: int) -> int:
    """A seed for process `rank` derived from a run's `seed`: rank 0 keeps it, other ranks get distinct ones."""
    return (seed + rank * 0x9E3779B97F4A7C15) % (2**63)
