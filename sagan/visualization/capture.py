"""Recording the attention weights of a network's attention layers during an ordinary forward pass.

Any layer whose `forward` takes `return_attention` (SAGAN's `SelfAttention2d`, the transformer layers'
`MultiHeadAttention`, the text models' `SequenceSelfAttention`) is asked for its weights: inside
`record_attention(net)` each such layer runs with `return_attention=True`, hands its output on as usual
and leaves its softmax weights `[N, heads, queries, keys]` in a record, with the grids the queries and
keys form when the layer works on a feature map or a token grid. Nothing in the network changes.
"""

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttentionRecord:
    """One attention layer's weights in one forward pass.

    Attributes:
        name: the layer's name in the network (`attention.0`, `stages.2.1.attention`).
        weights: `[N, heads, queries, keys]` softmax rows, float32 on the CPU.
        query_grid: (H, W) of the queries when they form a grid (a feature map, or tokens given with
            `hw`); None for sequences and token lists (a ViT's patches behind a class token).
        key_grid: (H, W) of the keys (a quarter of the queries' positions when keys are pooled).
        gamma: the layer's output gate, for layers that have one.
    """

    name: str
    weights: torch.Tensor
    query_grid: tuple[int, int] | None
    key_grid: tuple[int, int] | None
    gamma: float | None


def attention_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The layers of `net` (by name) that return their attention weights when asked."""
    return {
        name: module for name, module in net.named_modules()
        if "return_attention" in inspect.signature(module.forward).parameters
    }


def _grids(module: nn.Module, args: tuple, kwargs: dict, weights: torch.Tensor):
    x = args[0]
    if x.dim() == 4:  # a feature map [N, C, H, W]
        h, w = x.shape[-2:]
        key_grid = getattr(module, "key_grid", None)  # pooled keys: the layer says on which grid
        keys = tuple(key_grid(h, w)) if key_grid is not None else (h, w)
        if keys[0] * keys[1] != weights.shape[-1]:
            raise ValueError(f"{type(module).__name__}: {weights.shape[-1]} keys do not form the grid {keys}")
        return (h, w), keys
    hw = kwargs.get("hw", args[1] if len(args) > 1 else None)
    if isinstance(hw, (tuple, list)) and len(hw) == 2:  # tokens of a row-major grid
        return tuple(hw), tuple(hw)
    return None, None


@contextmanager
def record_attention(net: nn.Module, names: list[str] | None = None) -> Iterator[dict[str, AttentionRecord]]:
    """Inside the block, the attention layers of `net` (all, or those named) record their weights of the
    last forward pass into the dict it yields, keyed by layer name.

    Raises:
        ValueError: a name that is no attention layer of `net` (the message lists those it has).
    """
    layers = attention_layers(net)
    if names is not None:
        unknown = [name for name in names if name not in layers]
        if unknown:
            raise ValueError(f"no attention layer {', '.join(unknown)}; this network has: {', '.join(layers) or 'none'}")
        layers = {name: layers[name] for name in names}
    records: dict[str, AttentionRecord] = {}

    def recording(name: str, module: nn.Module):
        original = module.forward

        def forward(*args, **kwargs):
            out, weights = original(*args, **kwargs, return_attention=True)
            gamma = getattr(module, "gamma", None)
            records[name] = AttentionRecord(
                name, weights.detach().float().cpu(), *_grids(module, args, kwargs, weights),
                float(gamma.detach()) if isinstance(gamma, torch.Tensor) else None,
            )
            return out

        return forward

    for name, module in layers.items():
        module.forward = recording(name, module)  # an instance attribute: the class's forward is untouched
    try:
        yield records
    finally:
        for module in layers.values():
            del module.forward
