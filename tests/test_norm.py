import pytest
import torch
from torch import nn
from torch.testing import assert_close

from sagan.layers.norm import (
    ConditionalBatchNorm2d,
    ModulatedLayerNorm,
    SpectralNorm,
    embed_classes,
    frozen_spectral_norm,
    improved_spectral_norm,
    spectral_norm,
    spectral_norms,
)


def top_singular_value(weight: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(weight.flatten(1), ord=2)


def test_linear_weight_has_unit_top_singular_value():
    layer = spectral_norm(nn.Linear(20, 30))
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(7.0)
    for _ in range(30):
        layer(torch.randn(2, 20))  # power iteration runs in training mode
    assert_close(top_singular_value(layer.weight), torch.tensor(1.0), rtol=0, atol=1e-3)


def test_conv_weight_has_unit_top_singular_value():
    layer = spectral_norm(nn.Conv2d(3, 16, 3))
    for _ in range(200):  # 16 x 27 matrix with close top singular values: power iteration converges slowly
        layer(torch.randn(1, 3, 5, 5))
    assert_close(top_singular_value(layer.weight), torch.tensor(1.0), rtol=0, atol=1e-2)


def test_frozen_spectral_norm_pauses_power_iteration_only():
    net = nn.Sequential(spectral_norm(nn.Linear(4, 4)), nn.BatchNorm1d(4))
    sn = spectral_norms(net)[0]
    u = sn.u.clone()
    with frozen_spectral_norm(net):
        net(torch.randn(5, 4))
        assert net[1].training and not sn.training
    assert_close(sn.u, u, rtol=0, atol=0)
    assert sn.training
    net(torch.randn(5, 4))
    assert not torch.equal(sn.u, u)


def test_eval_mode_does_not_iterate():
    layer = spectral_norm(nn.Linear(4, 3)).eval()
    sn = layer.parametrizations.weight[0]
    assert isinstance(sn, SpectralNorm)
    u = sn.u.clone()
    layer(torch.randn(2, 4))
    assert_close(sn.u, u, rtol=0, atol=0)


def test_gradient_flows_through_sigma():
    """d/dW of W / sigma(W), with sigma = u^T W v for the power iteration's u, v (Miyato et al.: the vectors are
    constants, sigma is not): W's gradient is (G - (sum(G * W) / sigma) u v^T) / sigma for G = dL/dW_sn."""
    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(3, 4)).eval()  # eval: the vectors stay as they are
    sn = layer.parametrizations.weight[0]
    x = torch.randn(5, 3)
    layer(x).pow(2).sum().backward()
    weight = layer.parametrizations.weight.original.detach()
    sigma = torch.dot(sn.u, weight @ sn.v)
    w_sn = (weight / sigma).requires_grad_()
    (x @ w_sn.t() + layer.bias.detach()).pow(2).sum().backward()  # G = dL/dW_sn, computed independently
    expected = (w_sn.grad - (w_sn.grad * weight).sum() / sigma * torch.outer(sn.u, sn.v)) / sigma
    assert_close(layer.parametrizations.weight.original.grad, expected)
    assert not torch.allclose(expected, w_sn.grad / sigma, atol=1e-4)  # a detached sigma would give this


def test_conditional_batch_norm_uses_class():
    bn = ConditionalBatchNorm2d(4, num_classes=3)
    with torch.no_grad():
        bn.gain.weight.copy_(torch.randn(3, 4))
        bn.bias.weight.copy_(torch.randn(3, 4))
    x = torch.randn(6, 4, 2, 2)
    a = bn(x, torch.zeros(6, dtype=torch.long))
    b = bn(x, torch.ones(6, dtype=torch.long))
    assert not torch.allclose(a, b)
    normalized = nn.functional.batch_norm(x, None, None, training=True)
    assert_close(a, normalized * bn.gain.weight[0][None, :, None, None] + bn.bias.weight[0][None, :, None, None])


def test_unconditional_batch_norm_ignores_labels():
    bn = ConditionalBatchNorm2d(4, num_classes=0)
    x = torch.randn(6, 4, 2, 2)
    assert_close(bn(x), bn(x, torch.zeros(6, dtype=torch.long)))


def test_improved_spectral_norm_keeps_the_initial_top_singular_value():
    layer = nn.Linear(20, 30)
    initial = top_singular_value(layer.weight.detach())
    improved_spectral_norm(layer)
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(5.0)  # training rescales the weight ...
    for _ in range(30):
        layer(torch.randn(2, 20))
    assert_close(top_singular_value(layer.weight), initial, rtol=1e-3, atol=0)  # ... its gain stays put
    assert len(spectral_norms(layer)) == 1  # paused by frozen_spectral_norm like the plain one


def test_modulated_layer_norm_formula():
    norm = ModulatedLayerNorm(6, cond_dim=3)
    x, cond = torch.randn(4, 5, 6), torch.randn(4, 3)
    normalized = nn.functional.layer_norm(x, (6,))
    expected = normalized * (1 + norm.scale(cond)[:, None]) + norm.shift(cond)[:, None]
    assert_close(norm(x, cond), expected)
    assert not torch.allclose(norm(x, cond), norm(x, cond * 2))
    with pytest.raises(ValueError, match="cond"):
        norm(x)


def test_unmodulated_layer_norm_is_layer_norm():
    norm = ModulatedLayerNorm(6)
    x = torch.randn(4, 5, 6)
    assert_close(norm(x), nn.functional.layer_norm(x, (6,), norm.norm.weight, norm.norm.bias))


def test_class_weights_blend_the_class_parameters():
    norm = ConditionalBatchNorm2d(4, num_classes=3).eval()
    with torch.no_grad():
        norm.gain.weight.normal_()
        norm.bias.weight.normal_()
    x = torch.randn(2, 4, 5, 5)
    one_hot = torch.eye(3)[[2, 0]]
    assert_close(norm(x, one_hot), norm(x, torch.tensor([2, 0])))  # one-hot weights: the class itself
    half = torch.tensor([[0.5, 0.0, 0.5], [0.25, 0.75, 0.0]])
    gain = half @ norm.gain.weight  # the blended gain and bias, written out
    bias = half @ norm.bias.weight
    assert_close(norm(x, half), norm.bn(x) * gain[:, :, None, None] + bias[:, :, None, None])
    assert_close(embed_classes(norm.gain, half)[0], (norm.gain.weight[0] + norm.gain.weight[2]) / 2)
