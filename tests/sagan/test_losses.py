import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from sagan.layers.attention import SelfAttention2d
from sagan.losses import (
    GradientPenalty,
    HingeLoss,
    NonSaturatingLoss,
    R1Penalty,
    R1R2Penalty,
    R2Penalty,
    RelativisticLoss,
    WassersteinLoss,
)

REAL = torch.tensor([2.0, -0.5, 0.0])
FAKE = torch.tensor([-1.5, 0.5, 3.0])


def test_hinge_exact():
    loss = HingeLoss()
    # relu(1 - real) = [0, 1.5, 1] -> mean 2.5/3; relu(1 + fake) = [0, 1.5, 4] -> mean 5.5/3
    assert_close(loss.discriminator(REAL, FAKE), torch.tensor(8.0 / 3))
    assert_close(loss.generator(FAKE), torch.tensor(-2.0 / 3))


def test_non_saturating_exact():
    loss = NonSaturatingLoss()
    expected_d = -torch.log(torch.sigmoid(REAL)).mean() - torch.log(1 - torch.sigmoid(FAKE)).mean()
    assert_close(loss.discriminator(REAL, FAKE), expected_d)
    assert_close(loss.generator(FAKE), -torch.log(torch.sigmoid(FAKE)).mean())


def test_wasserstein_exact():
    loss = WassersteinLoss()
    assert_close(loss.discriminator(REAL, FAKE), torch.tensor(2.0 / 3 - 0.5))
    assert_close(loss.generator(FAKE), torch.tensor(-2.0 / 3))


def test_wasserstein_drift_exact():
    # TransGAN's epsilon term: drift * E[D(x)]^2 with E[D(x)] = 0.5 here
    loss = WassersteinLoss(drift=0.1)
    assert_close(loss.discriminator(REAL, FAKE), torch.tensor(2.0 / 3 - 0.5 + 0.1 * 0.25))
    assert_close(loss.generator(FAKE), torch.tensor(-2.0 / 3))
    real = REAL.clone().requires_grad_(True)
    loss.discriminator(real, FAKE).backward()
    assert_close(real.grad, torch.full((3,), (-1 + 2 * 0.1 * 0.5) / 3))  # the term pulls E[D(x)] to 0
    with pytest.raises(ValueError):
        WassersteinLoss(drift=-1.0)


def test_relativistic_exact():
    loss = RelativisticLoss()
    assert_close(loss.discriminator(REAL, FAKE), -torch.log(torch.sigmoid(REAL - FAKE)).mean())
    assert_close(loss.generator(FAKE, REAL), -torch.log(torch.sigmoid(FAKE - REAL)).mean())
    with pytest.raises(ValueError):
        loss.generator(FAKE)


def _linear_critic(w: torch.Tensor):
    return lambda x, y: (x.flatten(1) * w).sum(1)


def test_gradient_penalty_linear_critic_is_exact():
    # A linear critic has gradient w everywhere, so the penalty is weight * (||w|| - center)^2.
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])  # ||w|| = 5
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    assert_close(GradientPenalty(weight=10.0)(_linear_critic(w), real, fake), torch.tensor(160.0))
    assert_close(GradientPenalty(weight=2.0, center=0.0)(_linear_critic(w), real, fake), torch.tensor(50.0))


def test_gradient_penalty_of_a_packing_critic_is_per_group():
    # A critic scoring pairs of images (PacGAN) has gradient w on each pair: ||w|| per group, not per image.
    w = torch.tensor([3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # ||w|| = 5 over a pair of 4-pixel images
    packed = lambda x, y: (x.reshape(x.shape[0] // 2, -1) * w).sum(1)
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    assert_close(GradientPenalty(weight=10.0)(packed, real, fake), torch.tensor(160.0))
    assert_close(R1Penalty(gamma=0.2)(packed, real, real), torch.tensor(2.5))


def test_r1_linear_critic_is_exact():
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])
    real = torch.randn(6, 1, 2, 2)
    assert_close(R1Penalty(gamma=0.2)(_linear_critic(w), real, real), torch.tensor(2.5))


class _AttentionCritic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.attn = SelfAttention2d(8, num_heads=2, head_dim=4)
        torch.nn.init.constant_(self.attn.gamma, 0.5)

    def forward(self, x, y=None):
        return self.attn(self.conv(x)).mean(dim=(1, 2, 3))


@pytest.mark.parametrize("penalty", [GradientPenalty(), R1Penalty(), R2Penalty(), R1R2Penalty()], ids=repr)
def test_penalty_double_backward_through_attention(penalty):
    critic = _AttentionCritic()
    real, fake = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    value = penalty(critic, real, fake)
    value.backward()
    for name, p in critic.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert critic.attn.gamma.grad.abs() > 0


def test_fused_attention_kernel_has_no_double_backward():
    """Why the penalties switch to the math kernel: on the default kernel the second backward fails."""
    critic = _AttentionCritic()
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="derivative|not implemented"):
        grad.pow(2).sum().backward()


def test_penalty_matches_manual_double_backward():
    critic = _AttentionCritic()
    real = torch.randn(3, 1, 8, 8)
    x = real.clone().requires_grad_(True)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    expected = 5.0 * grad.flatten(1).pow(2).sum(1).mean()
    assert_close(R1Penalty(gamma=10.0)(critic, real, real), expected)
    assert F.relu(expected) > 0


def test_r2_and_r1r2_exact_on_a_quadratic_critic():
    """D(x) = sum(a * x^2) has input gradient 2 a x: R1 reads it at the real images, R2 at the generated
    ones, each with its own labels (the critic scales its score by the label)."""
    a = torch.tensor([1.0, -2.0, 0.5, 3.0])
    critic = lambda x, y: (a * x.flatten(1).square()).sum(1) * (1.0 if y is None else y.float())  # noqa: E731
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    y_real, y_fake = torch.tensor([1, 2, 1, 3, 1]), torch.tensor([2, 1, 1, 1, 4])
    norm2 = lambda x, y: ((2 * a * x.flatten(1)) * y[:, None].float()).square().sum(1).mean()  # noqa: E731
    r1, r2 = norm2(real, y_real), norm2(fake, y_fake)
    assert_close(R2Penalty(gamma=3.0)(critic, real, fake, y_real, y_fake), 1.5 * r2)
    assert_close(R1R2Penalty(gamma=3.0)(critic, real, fake, y_real, y_fake), 1.5 * (r1 + r2))
    assert_close(R1R2Penalty(gamma=3.0)(critic, real, fake), 1.5 * (norm2(real, torch.ones(5)) + norm2(fake, torch.ones(5))))
    with pytest.raises(ValueError, match="gamma"):
        R1R2Penalty(gamma=-1.0)


# ---------------------------------------------------------------- the finite-difference approximation
FINITE = dict(approximation="finite_difference")


@pytest.mark.parametrize("cls", [R1Penalty, R2Penalty, R1R2Penalty])
def test_finite_difference_of_a_linear_critic_is_exact_per_draw(cls):
    """For D(x) = w . x, (D(x + sigma e) - D(x))^2 / sigma^2 = (w . e)^2 for every sigma: the penalty is
    gamma / 2 * mean((w . e_i)^2) over the noise the penalty draws (replayed here from the same seed)."""
    w = torch.tensor([3.0, 4.0, -1.0, 2.0])
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    both = torch.cat([real, fake]) if cls is R1R2Penalty else real
    torch.manual_seed(7)
    noise = torch.randn_like(both).flatten(1)
    squared = (noise @ w).square()
    expected = 0.5 * (squared[:6].mean() + squared[6:].mean()) if cls is R1R2Penalty else 0.5 * squared.mean()
    torch.manual_seed(7)
    inputs = (real, fake) if cls is not R2Penalty else (fake, real)
    assert_close(cls(gamma=1.0, sigma=0.3, **FINITE)(_linear_critic(w), *inputs), expected, rtol=1e-4, atol=1e-4)


def test_finite_difference_matches_the_exact_penalty_on_a_smooth_critic():
    """On a smooth attention critic, R1 + R2 by finite difference (sigma 0.01) over 1,000 noise draws per
    image equals the exact penalty within 5%: (g . e)^2 has mean ||g||^2 and standard deviation sqrt(2)
    ||g||^2, so the mean of 16,000 draws (8 images x 1,000, real and generated) is off by about
    sqrt(2 / 16,000) = 1.1% (5% is 4.5 standard deviations), and sigma's bias is O(sigma^2) (the odd
    moments of e vanish). Measured at 2,000 draws: -1.2% and +1.0% for two noise seeds at sigma 0.001
    to 0.1, -9% at sigma 2 (a bias that the tolerance does catch)."""
    torch.manual_seed(0)
    critic = _AttentionCritic()
    real, fake = torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)
    exact = R1R2Penalty(gamma=1.0)(critic, real, fake)
    draws = 1000
    with torch.no_grad():
        repeated = real.repeat(draws, 1, 1, 1), fake.repeat(draws, 1, 1, 1)
        approximated = R1R2Penalty(gamma=1.0, **FINITE)(critic, *repeated)
    assert_close(approximated, exact.detach(), rtol=0.05, atol=0.0)
    assert exact > 0


def _spy_attention(monkeypatch) -> list[bool]:
    """Records, at every attention call, whether the math kernel was allowed (sdpa_kernel's flags)."""
    math_allowed = []
    original = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        math_allowed.append(torch.backends.cuda.math_sdp_enabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return math_allowed


@pytest.mark.parametrize("cls", [R1Penalty, R2Penalty, R1R2Penalty])
def test_finite_difference_runs_on_the_fused_attention_kernel(cls, monkeypatch):
    """With only the fused (flash) kernel allowed, the approximated penalty's forward and backward run (the
    exact one needs the math kernel's double backward: `test_fused_attention_kernel_has_no_double_backward`),
    and no attention call of it sees the math kernel switched on; the exact penalty's calls all do."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    critic = _AttentionCritic()
    real, fake = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    math_allowed = _spy_attention(monkeypatch)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        cls(**FINITE)(critic, real, fake).backward()
    assert math_allowed and not any(math_allowed)
    assert critic.attn.gamma.grad.abs() > 0 and all(torch.isfinite(p.grad).all() for p in critic.parameters())
    math_allowed.clear()
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        cls()(critic, real, fake)
    assert math_allowed and all(math_allowed)


def test_finite_difference_sees_the_same_augmentation_in_both_passes():
    """A random augmentation in front of D (here a random sign per image) draws the same for x and for
    x + sigma e: the penalty of a linear critic stays (w . e)^2, not the augmentation's jump / sigma."""
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])

    def augmented(x, y):
        sign = torch.randint(0, 2, (x.shape[0], 1)) * 2.0 - 1.0
        return (sign * x.flatten(1) * w).sum(1)

    real = torch.randn(64, 1, 2, 2)
    value = R1Penalty(gamma=2.0, sigma=1e-3, **FINITE)(augmented, real, real)
    assert value < 100  # E[(w . e)^2] = 25; a sign mismatch would add (2 w . x / sigma)^2 ~ 1e8


def test_finite_difference_options_are_checked():
    for cls in (R1Penalty, R2Penalty, R1R2Penalty):
        for sigma in (0.0, -0.1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="sigma"):
                cls(sigma=sigma, **FINITE)
        with pytest.raises(ValueError, match="approximation"):
            cls(approximation="central")
    assert repr(R1R2Penalty(gamma=1.0, sigma=0.05, **FINITE)) == (
        "R1R2Penalty(gamma=1.0, approximation='finite_difference', sigma=0.05)"
    )
    assert repr(R1Penalty(gamma=1.0)) == "R1Penalty(gamma=1.0)"
