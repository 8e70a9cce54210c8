"""Adversarial objectives and discriminator regularizers: pure tensor code, no Lightning.

A loss object turns discriminator logits into the two players' losses. Logits are raw scores: the loss
owns any nonlinearity. A penalty takes a `critic(x, y) -> logits` callable (the discriminator, with any
augmentation in front of it), the real and generated batches and their labels, and returns a scalar to
add to the discriminator's loss.

The modern recipe of R3GAN (Huang et al., NeurIPS 2024, "The GAN is dead; long live the GAN!"):
`RelativisticLoss` (the relativistic pairing loss, RpGAN) with `R1R2Penalty` (zero-centred gradient
penalties on real and on generated images).

R1, R2 and R1 + R2 take `approximation="finite_difference"`: the squared gradient norm is replaced by
(D(x + sigma * e) - D(x))^2 / sigma^2 with e ~ N(0, I), as in GAT (Hyun et al., 2025, "Scalable GANs
with Transformers"). Its expectation over e is ||grad D(x)||^2 up to O(sigma^2), and training on it needs
first-order gradients only, so attention runs on the fused kernels (flash, memory-efficient), which have
no double backward.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from sagan.errors import check_range, check_ranges
from sagan.layers.attention import math_attention

Critic = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
Approximation = Literal["exact", "finite_difference"]
APPROXIMATIONS = ("exact", "finite_difference")


class AdversarialLoss(ABC):
    """Base class: `discriminator(real, fake)` and `generator(fake, real)` map logits to scalar losses."""

    #: The generator's loss needs the discriminator's logits on real data (relativistic losses).
    generator_needs_real = False

    @abstractmethod
    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Loss the discriminator minimizes, from its logits on real and generated samples."""

    @abstractmethod
    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """Loss the generator minimizes, from the discriminator's logits on generated samples."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NonSaturatingLoss(AdversarialLoss):
    """The original GAN game (Goodfellow et al., 2014) with the non-saturating generator loss.

    D minimizes -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))); G minimizes -log sigmoid(D(G(z))).
    """

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return F.softplus(-fake).mean()


class HingeLoss(AdversarialLoss):
    """Hinge loss (Lim & Ye, 2017; used by SAGAN and BigGAN).

    D minimizes relu(1 - D(x)) + relu(1 + D(G(z))); G minimizes -D(G(z)).
    """

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return -fake.mean()


class WassersteinLoss(AdversarialLoss):
    """Wasserstein loss (Arjovsky et al., 2017); pair it with `GradientPenalty` for WGAN-GP.

    D minimizes D(G(z)) - D(x) + drift * E[D(x)]^2; G minimizes -D(G(z)).

    The drift term keeps the critic's output from wandering off, as the loss is blind to a constant
    shift of D. `drift=1e-3` with the square of the mean is TransGAN's "wgangp-eps" loss; Progressive
    GAN's epsilon term (Karras et al., 2018) squares each logit before the mean instead.

    Args:
        drift: weight of the drift term (0: plain Wasserstein loss).
    """

    def __init__(self, drift: float = 0.0):
        check_range("WassersteinLoss", "drift", drift, "[0, inf)")
        self.drift = drift

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = fake.mean() - real.mean()
        return loss + self.drift * real.mean().square() if self.drift else loss

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return -fake.mean()

    def __repr__(self) -> str:
        return f"WassersteinLoss(drift={self.drift})" if self.drift else "WassersteinLoss()"


class RelativisticLoss(AdversarialLoss):
    """Relativistic pairing GAN: RSGAN (Jolicoeur-Martineau, 2019; used by RelGAN), R3GAN's RpGAN.

    D minimizes -log sigmoid(D(x) - D(G(z))); G minimizes -log sigmoid(D(G(z)) - D(x)), pairing the
    i-th real and fake sample. With R1 and R2 (`R1R2Penalty`) it is the loss of R3GAN.
    """

    generator_needs_real = True

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake - real).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        if real is None:
            raise ValueError("RelativisticLoss.generator needs the logits on real data")
        return F.softplus(real - fake).mean()


def _input_gradient(critic: Critic, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """d(sum critic(x))/dx with a graph kept for the double backward, on the math attention kernel: one
    row per score, so a packing discriminator (one score per group of images) gets each group's gradient."""
    x = x.detach().requires_grad_(True)
    with math_attention():
        scores = critic(x, y)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.reshape(scores.shape[0], -1)


def _finite_difference(critic: Critic, x: torch.Tensor, y: torch.Tensor | None, sigma: float) -> torch.Tensor:
    """(D(x + sigma * e) - D(x))^2 / sigma^2 per score, e ~ N(0, I): an estimate of ||grad D(x)||^2 whose
    graph needs first-order gradients only (no math-kernel fallback). Both passes start from the same random
    state, so a random augmentation in front of D (or dropout inside it) draws the same for x and x + sigma * e."""
    x = x.detach()
    noise = torch.randn_like(x)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # restores the state on exit: the second pass draws the same
        clean = critic(x, y)
    perturbed = critic(x + sigma * noise, y)
    return ((perturbed - clean) / sigma).pow(2).reshape(clean.shape[0], -1).sum(dim=1)


def _squared_gradient_norm(
    critic: Critic, x: torch.Tensor, y: torch.Tensor | None, approximation: str, sigma: float
) -> torch.Tensor:
    """||grad D(x)||^2 per score ([S]): exact (double backward, math kernel) or by finite difference."""
    if approximation == "finite_difference":
        return _finite_difference(critic, x, y, sigma)
    return _input_gradient(critic, x, y).pow(2).sum(dim=1)


def _approximation_repr(penalty) -> str:
    exact = penalty.approximation == "exact"
    return "" if exact else f", approximation={penalty.approximation!r}, sigma={penalty.sigma}"


def _check_approximation(owner: str, gamma: float, approximation: str, sigma: float) -> None:
    check_ranges(owner, gamma=(gamma, "[0, inf)"), sigma=(sigma, "(0, inf)"))
    if approximation not in APPROXIMATIONS:
        raise ValueError(f"{owner}: approximation must be one of {', '.join(APPROXIMATIONS)}, got {approximation!r}")


class Penalty(ABC):
    """Base class of discriminator regularizers: `penalty(critic, real, fake, y, y_fake)` -> scalar.

    `y` labels the real images, `y_fake` the generated ones (both None for an unconditional critic).
    """

    @abstractmethod
    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The penalty to add to the discriminator's loss."""


class GradientPenalty(Penalty):
    """WGAN-GP (Gulrajani et al., 2017): weight * E[(||grad D(x_hat)||_2 - center)^2].

    x_hat lies on random lines between real and generated samples.

    Args:
        weight: the penalty's coefficient (lambda, 10 in the paper).
        center: the target gradient norm (1 in the paper; 0 gives the zero-centred variant).
    """

    def __init__(self, weight: float = 10.0, center: float = 1.0):
        check_ranges("GradientPenalty", weight=(weight, "[0, inf)"), center=(center, "[0, inf)"))
        self.weight = weight
        self.center = center

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        x_hat = torch.lerp(real.detach(), fake.detach(), alpha)
        norm = _input_gradient(critic, x_hat, y).norm(2, dim=1)
        return self.weight * (norm - self.center).pow(2).mean()

    def __repr__(self) -> str:
        return f"GradientPenalty(weight={self.weight}, center={self.center})"


class R1Penalty(Penalty):
    """R1 (Mescheder et al., 2018): gamma / 2 * E[||grad D(x)||^2] on real data.

    Args:
        gamma: the penalty's coefficient.
        approximation: "exact" (autograd's double backward, attention on the math kernel) or
            "finite_difference" ((D(x + sigma * e) - D(x))^2 / sigma^2, e ~ N(0, I): first-order gradients
            only, attention on the fused kernels; equal to the exact penalty in expectation up to O(sigma^2)).
        sigma: the finite difference's noise scale, in input units (images in [-1, 1]); unused when exact.
    """

    def __init__(self, gamma: float = 10.0, approximation: Approximation = "exact", sigma: float = 0.01):
        _check_approximation("R1Penalty", gamma, approximation, sigma)
        self.gamma = gamma
        self.approximation = approximation
        self.sigma = sigma

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return 0.5 * self.gamma * _squared_gradient_norm(critic, real, y, self.approximation, self.sigma).mean()

    def __repr__(self) -> str:
        return f"R1Penalty(gamma={self.gamma}{_approximation_repr(self)})"


class R2Penalty(Penalty):
    """R2 (Roth et al., 2017; Mescheder et al., 2018): gamma / 2 * E[||grad D(G(z))||^2] on generated data.

    Args:
        gamma: the penalty's coefficient.
        approximation: "exact" (autograd's double backward, attention on the math kernel) or
            "finite_difference" ((D(x + sigma * e) - D(x))^2 / sigma^2, e ~ N(0, I): first-order gradients
            only, attention on the fused kernels; equal to the exact penalty in expectation up to O(sigma^2)).
        sigma: the finite difference's noise scale, in input units (images in [-1, 1]); unused when exact.
    """

    def __init__(self, gamma: float = 10.0, approximation: Approximation = "exact", sigma: float = 0.01):
        _check_approximation("R2Penalty", gamma, approximation, sigma)
        self.gamma = gamma
        self.approximation = approximation
        self.sigma = sigma

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return 0.5 * self.gamma * _squared_gradient_norm(critic, fake, y_fake, self.approximation, self.sigma).mean()

    def __repr__(self) -> str:
        return f"R2Penalty(gamma={self.gamma}{_approximation_repr(self)})"


class R1R2Penalty(Penalty):
    """R1 + R2, R3GAN's regularizer: gamma / 2 * (E[||grad D(x)||^2] + E[||grad D(G(z))||^2]).

    Penalizing the gradient on both sides keeps the discriminator flat around the real and the generated
    data, which is what makes the relativistic pairing loss converge locally (Huang et al., 2024). One
    critic pass over the real and the generated batch together (equal sizes, so a packing critic's groups
    never mix the two).

    Args:
        gamma: the coefficient of each of the two penalties.
        approximation: "exact" (autograd's double backward, attention on the math kernel) or
            "finite_difference" ((D(x + sigma * e) - D(x))^2 / sigma^2, e ~ N(0, I): first-order gradients
            only, attention on the fused kernels; equal to the exact penalty in expectation up to O(sigma^2)).
        sigma: the finite difference's noise scale, in input units (images in [-1, 1]); unused when exact.
    """

    def __init__(self, gamma: float = 10.0, approximation: Approximation = "exact", sigma: float = 0.01):
        _check_approximation("R1R2Penalty", gamma, approximation, sigma)
        self.gamma = gamma
        self.approximation = approximation
        self.sigma = sigma

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if real.shape[0] != fake.shape[0]:
            raise ValueError(f"R1R2Penalty: real and generated batches differ in size: {real.shape[0]}, {fake.shape[0]}")
        labels = None if y is None else torch.cat([y, y if y_fake is None else y_fake])
        both = torch.cat([real.detach(), fake.detach()])
        squared = _squared_gradient_norm(critic, both, labels, self.approximation, self.sigma)
        r1, r2 = squared.chunk(2)
        return 0.5 * self.gamma * (r1.mean() + r2.mean())

    def __repr__(self) -> str:
        return f"R1R2Penalty(gamma={self.gamma}{_approximation_repr(self)})"
