import torch
from torch.testing import assert_close

from sagan.layers.attention import SelfAttention2d


def naive_attention(layer: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V per head, written out with plain matrix products."""
    n, c, h, w = x.shape
    tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
    q, k, v = (tokens @ layer.qkv.weight.t()).chunk(3, dim=-1)
    heads = []
    for i in range(layer.num_heads):
        s = slice(i * layer.head_dim, (i + 1) * layer.head_dim)
        scores = q[..., s] @ k[..., s].transpose(1, 2) / layer.head_dim**0.5
        heads.append(torch.softmax(scores, dim=-1) @ v[..., s])
    out = torch.cat(heads, dim=-1) @ layer.out.weight.t()  # [N, HW, C]
    return x + layer.gamma * out.transpose(1, 2).reshape(n, c, h, w)


def test_matches_naive_reference():
    layer = SelfAttention2d(16, num_heads=2, head_dim=8, use_spectral_norm=False)
    torch.nn.init.constant_(layer.gamma, 0.7)
    x = torch.randn(3, 16, 5, 6)
    assert_close(layer(x), naive_attention(layer, x))


def test_matches_naive_reference_with_spectral_norm():
    layer = SelfAttention2d(16, num_heads=1).eval()
    torch.nn.init.constant_(layer.gamma, -1.3)
    x = torch.randn(2, 16, 4, 4)
    assert_close(layer(x), naive_attention(layer, x))


def test_gamma_zero_is_identity():
    layer = SelfAttention2d(8)
    x = torch.randn(2, 8, 4, 4)
    assert layer.gamma.item() == 0.0
    assert_close(layer(x), x, rtol=0, atol=0)


def test_returned_attention_map():
    layer = SelfAttention2d(16, num_heads=4, head_dim=4, use_spectral_norm=False)
    torch.nn.init.constant_(layer.gamma, 1.0)
    x = torch.randn(2, 16, 3, 5)
    y, weights = layer(x, return_attention=True)
    assert weights.shape == (2, 4, 15, 15)
    assert_close(weights.sum(-1), torch.ones(2, 4, 15))
    assert_close(y, layer(x))


# ------------------------------------------------------------------ the paper's block (SAGANSelfAttention2d)
import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sagan.layers.attention import SAGANSelfAttention2d, math_attention  # noqa: E402


def naive_official(layer: SAGANSelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """The TF code's block written out in NCHW: 1x1 convs, max_pool2d, softmax(theta phi^T), per head."""
    n, c, h, w = x.shape
    conv = lambda t, lin: torch.einsum("nchw,oc->nohw", t, lin.weight)  # noqa: E731
    theta = conv(x, layer.theta).flatten(2)  # [N, C/8, HW]
    phi = F.max_pool2d(conv(x, layer.phi), 2).flatten(2)  # [N, C/8, HW/4]
    g = F.max_pool2d(conv(x, layer.g), 2).flatten(2)  # [N, C/2, HW/4]
    heads = []
    for i in range(layer.num_heads):
        q = theta[:, i * layer.qk_dim:(i + 1) * layer.qk_dim].transpose(1, 2)
        k = phi[:, i * layer.qk_dim:(i + 1) * layer.qk_dim]
        v = g[:, i * layer.head_dim:(i + 1) * layer.head_dim].transpose(1, 2)
        heads.append(torch.softmax(q @ k, dim=-1) @ v)  # no temperature
    attended = torch.cat(heads, dim=-1).transpose(1, 2).reshape(n, -1, h, w)
    return x + layer.gamma * conv(attended, layer.out)


@pytest.mark.parametrize(("heads", "hw"), [(1, (6, 4)), (2, (5, 7))])
def test_official_block_matches_naive_math(heads, hw):
    layer = SAGANSelfAttention2d(32, num_heads=heads).eval()
    torch.nn.init.constant_(layer.gamma, 0.9)
    x = torch.randn(2, 32, *hw, dtype=torch.float64)
    layer.double()
    assert layer.key_grid(*hw) == (hw[0] // 2, hw[1] // 2)
    assert_close(layer(x), naive_official(layer, x))
    y, weights = layer(x, return_attention=True)
    assert weights.shape == (2, heads, hw[0] * hw[1], (hw[0] // 2) * (hw[1] // 2))
    assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))
    assert_close(y, naive_official(layer, x))


def test_official_block_parameters_and_separate_spectral_norms():
    layer = SAGANSelfAttention2d(64)
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {
        "gamma": (), "theta.parametrizations.weight.original": (8, 64), "phi.parametrizations.weight.original": (8, 64),
        "g.parametrizations.weight.original": (32, 64), "out.parametrizations.weight.original": (64, 32),
    }
    for lin in (layer.theta, layer.phi, layer.g, layer.out):  # each normalized weight has spectral norm 1
        assert_close(torch.linalg.matrix_norm(lin.weight.detach(), ord=2), torch.tensor(1.0), atol=1e-2, rtol=0)
    x = torch.randn(2, 64, 4, 4)
    assert_close(layer(x), x, rtol=0, atol=0)  # gamma starts at 0


def test_official_logits_are_wider_than_compact():
    """No temperature and separate norms: at initialization the official logits spread several times as far
    (0.29x at 64 channels, 0.18x at 256 for the compact block)."""
    x = torch.randn(4, 128, 16, 16)
    spread = []
    for layer in (SAGANSelfAttention2d(128), SelfAttention2d(128)):
        q, k, _ = layer.project(x)
        spread.append(((q @ k.transpose(-1, -2)) * layer.scale).std(-1).mean())
    assert spread[0] > 3 * spread[1]


def test_padded_fused_path_with_double_backward():
    """The fused path (q/k zero-padded to the value size) against the explicit weights, including the
    gradient of an input-gradient penalty (double backward on the math kernel)."""
    layer = SAGANSelfAttention2d(16, num_heads=2).double().eval()
    torch.nn.init.constant_(layer.gamma, 0.5)

    def penalty(explicit: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.randn(2, 16, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        x.requires_grad_(True)
        with math_attention():
            y = layer(x, return_attention=True)[0] if explicit else layer(x)
            (grad,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        value = grad.square().sum()
        return value, torch.autograd.grad(value, list(layer.parameters()))

    fused, fused_grads = penalty(False)
    explicit, explicit_grads = penalty(True)
    assert_close(fused, explicit)
    for a, b in zip(fused_grads, explicit_grads):
        assert_close(a, b)
    assert all(g.abs().sum() > 0 for g in fused_grads)


def test_official_block_first_order_gradients_on_the_default_kernel_match_naive_math():
    layer = SAGANSelfAttention2d(16, num_heads=2).double().eval()
    torch.nn.init.constant_(layer.gamma, 0.7)
    x = torch.randn(2, 16, 6, 4, dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(layer(x).square().sum(), [x, *layer.parameters()])
    expected = torch.autograd.grad(naive_official(layer, x).square().sum(), [x, *layer.parameters()])
    for a, b in zip(grads, expected):
        assert_close(a, b)
