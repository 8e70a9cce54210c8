"""Normalization layers: spectral norm with controllable power iteration (plain and ViTGAN's improved
variant), conditional batch norm, and modulated (self-modulated or conditional) layer norm."""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class SpectralNorm(nn.Module):
    """Parametrization that divides a weight by an estimate of its largest singular value.

    The estimate comes from power iteration (Miyato et al., 2018). One iteration runs per forward pass
    while the module is in training mode; `frozen_spectral_norm` switches that off for passes that do
    not belong to this network's own optimizer step, so each network refines its estimate once per step.

    Args:
        weight: the weight to normalize; its first dimension is the output dimension.
        n_power_iterations: power iterations per training forward pass.
        eps: numerical floor used when normalizing the singular vectors.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, eps: float = 1e-12):
        super().__init__()
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        matrix = weight.detach().flatten(1)
        if weight.device.type == "meta":  # shapes only (parameter counts): no values to iterate on
            self.register_buffer("u", torch.empty(matrix.shape[0], dtype=weight.dtype, device=weight.device))
            self.register_buffer("v", torch.empty(matrix.shape[1], dtype=weight.dtype, device=weight.device))
            return
        u = F.normalize(torch.randn(matrix.shape[0], dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
        v = F.normalize(torch.randn(matrix.shape[1], dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("v", v)
        # A few iterations at start-up so that the very first forward pass already sees sigma ~ sigma_max.
        self._power_iteration(matrix, 15)

    @torch.no_grad()
    def _power_iteration(self, matrix: torch.Tensor, n: int) -> None:
        for _ in range(n):
            self.v.copy_(F.normalize(matrix.t() @ self.u, dim=0, eps=self.eps))
            self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # weight: [out, ...] -> same shape, divided by sigma_max
        if weight.device.type == "meta":  # shapes only (parameter counts without allocating): no sigma
            return weight
        with torch.autocast(weight.device.type, enabled=False):  # sigma in the weight's own precision
            matrix = weight.flatten(1)
            u, v = self.u, self.v
            if self.training:
                self._power_iteration(matrix.detach(), self.n_power_iterations)
                # Clones keep autograd's saved copies intact if the buffers are updated again before backward.
                u, v = u.clone(), v.clone()
            sigma = torch.dot(u, matrix @ v)
            return weight / sigma


def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1) -> nn.Module:
    """Registers `SpectralNorm` on `module.<name>` and returns the module."""
    weight = getattr(module, name)
    parametrize.register_parametrization(module, name, SpectralNorm(weight, n_power_iterations))
    return module


def spectral_norms(module: nn.Module) -> list[SpectralNorm]:
    """All `SpectralNorm` parametrizations inside `module`."""
    return [m for m in module.modules() if isinstance(m, SpectralNorm)]


@contextmanager
def frozen_spectral_norm(module: nn.Module) -> Iterator[None]:
    """Inside the block, `module`'s spectral norms use their current estimate without iterating.

    Batch norm and everything else keep their mode; only the power iteration pauses.
    """
    norms = [(m, m.training) for m in spectral_norms(module)]
    for m, _ in norms:
        m.training = False
    try:
        yield
    finally:
        for m, mode in norms:
            m.training = mode


def embed_classes(embedding: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Rows of `embedding` for class indices `y` [N], or for class weights `y` [N, num_classes] (float) the
    blend of rows they weigh: a one-hot row gives that class's row, (1 - a, a) interpolates two classes."""
    return y.to(embedding.weight.dtype) @ embedding.weight if y.is_floating_point() else embedding(y)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose per-channel gain and bias come from a class embedding (de Vries et al., 2017).

    With `num_classes=0` it is plain batch norm with a learned affine transform, and `y` is ignored, so
    one generator block serves conditional and unconditional models.

    Args:
        num_features: channels of the input.
        num_classes: number of classes (0: unconditional); the gain starts at 1 and the bias at 0.
    """

    def __init__(self, num_features: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, num_features)
            self.bias = nn.Embedding(num_classes, num_features)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, C, H, W], y: [N] class indices, [N, num_classes] class weights (a blend) or None -> [N, C, H, W]
        if not self.num_classes:
            return self.bn(x)
        gain, bias = embed_classes(self.gain, y), embed_classes(self.bias, y)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


class GroupNorm2d(nn.GroupNorm):
    """Group norm (Wu and He, 2018) with `ConditionalBatchNorm2d`'s call, `y` ignored: per-sample statistics,
    so training and inference normalize alike (no running statistics). `min(32, channels)` groups that divide
    the channels."""

    def __init__(self, num_features: int):
        super().__init__(math.gcd(32, num_features), num_features)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, C, H, W], y: ignored -> [N, C, H, W]
        return super().forward(x)


class _Rescale(nn.Module):
    """Parametrization that multiplies a weight by a fixed factor."""

    def __init__(self, factor: torch.Tensor):
        super().__init__()
        self.register_buffer("factor", factor)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # weight: any shape -> same shape
        return weight * self.factor


def improved_spectral_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """ViTGAN's improved spectral norm (Lee et al., 2022): W * sigma(W_init) / sigma(W).

    Plain spectral norm pins every layer's gain to 1, which starves a transformer's attention logits;
    keeping each layer's initial spectral norm as its constant gain bounds the Lipschitz constant just
    as well while leaving the network's initial scale intact. Returns the module.
    """
    weight = getattr(module, name).detach()
    with torch.no_grad():
        sigma = torch.linalg.matrix_norm(weight.flatten(1).float(), ord=2).to(weight.dtype)
    spectral_norm(module, name)
    parametrize.register_parametrization(module, name, _Rescale(sigma))
    return module


class ModulatedLayerNorm(nn.Module):
    """Layer norm whose gain and bias are predicted from a conditioning vector.

    With `cond_dim > 0` the output is `LN(x) * (1 + scale(c)) + shift(c)` with linear `scale` and
    `shift`: self-modulated layer norm (ViTGAN) when `c` is a code of the noise, conditional layer norm
    when `c` embeds a class. With `cond_dim = 0` it is plain layer norm with a learned affine transform.

    Args:
        dim: channels of a token.
        cond_dim: size of the conditioning vector (0: unconditional).
    """

    def __init__(self, dim: int, cond_dim: int = 0):
        super().__init__()
        self.cond_dim = cond_dim
        self.norm = nn.LayerNorm(dim, elementwise_affine=cond_dim == 0)
        if cond_dim:
            self.scale = nn.Linear(cond_dim, dim)
            self.shift = nn.Linear(cond_dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        # x: [N, L, dim], cond: [N, cond_dim] or None -> [N, L, dim]
        if not self.cond_dim:
            return self.norm(x)
        if cond is None:
            raise ValueError("ModulatedLayerNorm: this norm is conditional and needs `cond`")
        return self.norm(x) * (1 + self.scale(cond)[:, None, :]) + self.shift(cond)[:, None, :]
