"""The repair networks beyond the contract suite: which tokens count as known, the attention map, options."""

import pytest
import torch
from torch.testing import assert_close

from sagan.models.inpaint import TINY, InpaintGenerator, PatchDiscriminator


def _net(name: str, **overrides) -> torch.nn.Module:
    cls, kwargs = TINY[name]
    return cls(**{**kwargs, **overrides})


def _hole(n: int = 1, size: int = 16) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size)
    mask[:, :, 4:12, 0:8] = 1  # tokens (1, 0) and (2, 0)... of a stride-4 grid lie wholly in the hole
    return mask


def test_a_token_is_known_when_its_patch_holds_a_known_pixel():
    g = _net("inpaint-generator")  # stride 4: a 4x4 token grid on 16x16 images
    mask = _hole()
    mask[:, :, 0, 15] = 1  # one hole pixel in token (0, 3): it stays known
    known = g.known_tokens(mask, 1, (4, 4)).view(4, 4)
    expected = torch.ones(4, 4, dtype=torch.bool)
    expected[1:3, 0:2] = False
    assert torch.equal(known, expected)
    assert g.known_tokens(None, 2, (4, 4)).all()


@pytest.mark.parametrize("name", ["inpaint-generator", "inpaint-generator-windows"])
def test_attention_map_reads_only_known_tokens(name):
    torch.manual_seed(0)
    g = _net(name)
    mask = _hole(2)
    damaged = (torch.rand(2, g.channels, 16, 16) * 2 - 1) * (1 - mask)
    weights = g.attention_map(damaged, mask)
    grid = 16 // 2**g.num_down
    assert weights.shape == (2, grid * grid, grid * grid)
    known = g.known_tokens(mask, 2, (grid, grid))
    assert torch.equal(weights[:, :, ~known[0]], torch.zeros_like(weights[:, :, ~known[0]]))
    reads = weights.sum(-1)
    if not g.window_size:
        assert_close(reads, torch.ones_like(reads))
    else:  # a query reads its own window only; a window wholly in the hole reads nothing
        rows = torch.arange(grid * grid)
        window = (rows // grid // g.window_size) * (grid // g.window_size) + (rows % grid) // g.window_size
        assert torch.equal(weights[0] > 0, (window[:, None] == window[None, :]) & known[0][None, :])
        assert_close(reads, (reads > 0.5).float())  # 1, or 0 for a window wholly in the hole


def test_a_generator_without_transformer_has_no_attention_map():
    g = _net("inpaint-generator", transformer_depth=0)
    assert g.attention_map(torch.zeros(1, 3, 16, 16), _hole()) is None


def test_masked_generator_needs_the_mask_and_blind_one_ignores_it():
    with pytest.raises(ValueError, match="needs the hole mask"):
        _net("inpaint-generator")(torch.zeros(1, 3, 16, 16))
    blind = _net("restore-generator").eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert_close(blind(x, _hole()), blind(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs the hole mask"):
        _net("patch-discriminator")(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize(
    ("cls", "kwargs", "expected"),
    [
        (InpaintGenerator, dict(image_size=18, num_down=2), r"multiples of 4 \(the stride\)"),
        (InpaintGenerator, dict(width=0), "width"),
        (InpaintGenerator, dict(transformer_depth=-1), "transformer_depth"),
        (InpaintGenerator, dict(width=3, num_heads=8), "not divisible by num_heads"),
        (InpaintGenerator, dict(image_size=32, num_down=2, window_size=3), r"multiples of 12 \(the stride\)"),
        (PatchDiscriminator, dict(image_size=20, num_layers=3), r"multiples of 8 \(the stride\)"),
        (PatchDiscriminator, dict(num_layers=0), "num_layers"),
    ],
)
def test_rejects_impossible_layouts(cls, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        cls(**kwargs)
