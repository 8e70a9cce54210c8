"""Adversarial objectives and discriminator regularizers: pure tensor code, no Lightning.

A loss object turns discriminator logits into the two players' losses. Logits are raw scores: the loss
owns any nonlinearity. A penalty takes a `critic(x, y) -> logits` callable (the discriminator, with any
augmentation in front of it), the real and generated batches and their labels, and returns a scalar to
add to the discriminator's loss.

The modern recipe of R3GAN (Huang et al., NeurIPS 2024, "The GAN is dead; long live the GAN!"):
`RelativisticLoss` (the relativistic pairing loss, RpGAN) with `R1R2Penalty` (zero-centred gradient
penalties on real and on generated images).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sagan.errors import check_range, check_ranges
from sagan.layers.attention import math_attention

Critic = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


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
    """

    def __init__(self, gamma: float = 10.0):
        check_range("R1Penalty", "gamma", gamma, "[0, inf)")
        self.gamma = gamma

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        grad = _input_gradient(critic, real, y)
        return 0.5 * self.gamma * grad.pow(2).sum(dim=1).mean()

    def __repr__(self) -> str:
        return f"R1Penalty(gamma={self.gamma})"


class R2Penalty(Penalty):
    """R2 (Roth et al., 2017; Mescheder et al., 2018): gamma / 2 * E[||grad D(G(z))||^2] on generated data.

    Args:
        gamma: the penalty's coefficient.
    """

    def __init__(self, gamma: float = 10.0):
        check_range("R2Penalty", "gamma", gamma, "[0, inf)")
        self.gamma = gamma

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        grad = _input_gradient(critic, fake, y_fake)
        return 0.5 * self.gamma * grad.pow(2).sum(dim=1).mean()

    def __repr__(self) -> str:
        return f"R2Penalty(gamma={self.gamma})"


class R1R2Penalty(Penalty):
    """R1 + R2, R3GAN's regularizer: gamma / 2 * (E[||grad D(x)||^2] + E[||grad D(G(z))||^2]).

    Penalizing the gradient on both sides keeps the discriminator flat around the real and the generated
    data, which is what makes the relativistic pairing loss converge locally (Huang et al., 2024). One
    critic pass over the real and the generated batch together (equal sizes, so a packing critic's groups
    never mix the two).

    Args:
        gamma: the coefficient of each of the two penalties.
    """

    def __init__(self, gamma: float = 10.0):
        check_range("R1R2Penalty", "gamma", gamma, "[0, inf)")
        self.gamma = gamma

    def __call__(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if real.shape[0] != fake.shape[0]:
            raise ValueError(f"R1R2Penalty: real and generated batches differ in size: {real.shape[0]}, {fake.shape[0]}")
        labels = None if y is None else torch.cat([y, y if y_fake is None else y_fake])
        squared = _input_gradient(critic, torch.cat([real.detach(), fake.detach()]), labels).pow(2).sum(dim=1)
        r1, r2 = squared.chunk(2)
        return 0.5 * self.gamma * (r1.mean() + r2.mean())

    def __repr__(self) -> str:
        return f"R1R2Penalty(gamma={self.gamma})"
