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
