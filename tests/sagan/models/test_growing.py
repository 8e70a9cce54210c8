"""Progressive growing of the image networks (`grow_from`, sagan/models/growing.py), SAGAN and TransGAN
alike: a stage that enters (fade 0) continues exactly where the previous stage was, the last stage is the
non-growing network, every parameter has a gradient at every stage (DDP), and the stage is part of the
state dict."""

import pytest
import torch
from torch.testing import assert_close

from sagan.models import sagan, transgan
from sagan.models.growing import GrowthState, blend_real, resize
from sagan.models.sagan import SAGANDiscriminator, SAGANGenerator
from sagan.models.transgan import TransGANDiscriminator, TransGANGenerator

FAMILIES = ["sagan", "transgan"]


def network(family: str, kind: str, grow: bool = True) -> torch.nn.Module:
    """The family's TINY `<kind>-32-cond` preset (SAGAN's with attention at 16x16), growing 8 -> 16 -> 32
    (built at its last stage) or not."""
    cls, kwargs = {"sagan": sagan, "transgan": transgan}[family].TINY[f"{kind}-32-cond"]
    extra = {"attn_resolutions": (16,)} if family == "sagan" else {}
    return cls(**{**kwargs, **extra, **({"grow_from": 8} if grow else {})})


def _networks(family: str):
    g, d = network(family, "generator").eval(), network(family, "discriminator").eval()
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 1])
    return g, d, z, y


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("previous, entering", [(8, 16), (16, 32)])
def test_a_stage_entering_at_fade_0_continues_the_previous_stage_exactly(family, previous, entering):
    g, d, z, y = _networks(family)
    g.growth.set(previous, 1.0)
    before = g(z, y)
    g.growth.set(entering, 0.0)
    assert_close(g(z, y), resize(before, entering), rtol=0, atol=0)  # G: the previous output, upsampled
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    d.growth.set(previous, 1.0)
    judged = d(resize(images, previous), y)
    d.growth.set(entering, 0.0)
    assert_close(d(resize(resize(images, previous), entering), y), judged, rtol=0, atol=0)  # D: its judgement
    # mid-fade the output moves away from the previous stage's
    g.growth.set(entering, 0.5)
    assert not torch.equal(g(z, y), resize(before, entering))


GROWTH_KEYS = ("growth.", "grow_heads.", "from_images.", "patch_embeds.")  # what growing adds


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_the_last_stage_is_the_non_growing_network(family, kind):
    grown = network(family, kind).eval()
    reference = network(family, kind, grow=False).eval()
    weights = {k: v for k, v in grown.state_dict().items() if not k.startswith(GROWTH_KEYS)}
    reference.load_state_dict(weights, strict=True)  # the same shapes, key for key
    heads = sum(p.numel() for name, p in grown.named_parameters() if name.startswith(GROWTH_KEYS))
    assert sum(p.numel() for p in grown.parameters()) - heads == sum(p.numel() for p in reference.parameters())
    assert 0 < heads < 0.1 * sum(p.numel() for p in reference.parameters())
    torch.manual_seed(1)
    x = (torch.randn(4, 8),) if hasattr(grown, "z_dim") else (torch.rand(4, 1, 32, 32) * 2 - 1,)
    y = torch.tensor([0, 1, 2, 1])
    assert_close(grown(*x, y), reference(*x, y), rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution, fade", [(8, 1.0), (16, 0.25), (32, 0.0), (32, 1.0)])
def test_every_parameter_has_a_finite_gradient_at_every_stage(family, resolution, fade):
    g, d, z, y = _networks(family)
    g.train(), d.train()
    for net in (g, d):
        net.growth.set(resolution, fade)
    d(g(z, y), y).mean().backward()
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name  # DDP's reducer expects every one
    unused = g.stage_modules(resolution, unused=True) + d.stage_modules(resolution, unused=True)
    assert unused or resolution == 32
    for module in unused:
        for p in module.parameters():
            assert not p.grad.any()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_stage_and_fade_are_part_of_the_state_dict(family):
    g, _, z, y = _networks(family)
    g.growth.set(16, 0.25)
    other = network(family, "generator").eval()
    other.load_state_dict(g.state_dict())
    assert (other.growth.resolution, other.growth.fade.item()) == (16, 0.25)
    assert_close(other(z, y), g(z, y), rtol=0, atol=0)


def test_real_images_are_blended_with_their_lower_resolution_copy():
    state = GrowthState((8, 16, 32))
    real = torch.rand(2, 1, 32, 32)
    state.set(16, 0.0)
    assert_close(blend_real(real, state), resize(resize(real, 8), 16), rtol=0, atol=0)
    state.set(16, 1.0)
    assert_close(blend_real(real, state), torch.nn.functional.avg_pool2d(real, 2), rtol=0, atol=0)
    state.set(16, 0.25)
    expected = 0.75 * resize(resize(real, 8), 16) + 0.25 * resize(real, 16)
    assert_close(blend_real(real, state), expected)


def test_bad_growth_options_are_refused():
    with pytest.raises(ValueError, match="grow_from must be one of"):
        SAGANGenerator(image_size=32, width=2, grow_from=12)
    with pytest.raises(ValueError, match="grow_from must be one of"):
        SAGANDiscriminator(image_size=32, width=2, grow_from=32)
    with pytest.raises(ValueError, match="grow_from"):
        SAGANGenerator(image_size=32, width=2, grow_from=-8)
    with pytest.raises(ValueError, match="grow_from must be one of"):
        TransGANGenerator(image_size=32, dims=(16, 8, 4), depths=(1, 1, 1), num_heads=2, grow_from=4)
    with pytest.raises(ValueError, match=r"grow_from must be one of \[16\]"):  # 4px patches can halve once
        TransGANDiscriminator(image_size=32, patch_size=2, dim=8, depth=1, num_heads=2, grow_from=8)
    with pytest.raises(ValueError, match="resolution must be one of"):
        GrowthState((8, 16)).set(32, 1.0)
    with pytest.raises(ValueError, match="fade must be in"):
        GrowthState((8, 16)).set(16, 1.5)


def test_a_non_square_network_does_not_grow_and_a_square_pair_does():
    for build in (lambda size: SAGANGenerator(image_size=size, width=2, grow_from=8),
                  lambda size: SAGANDiscriminator(image_size=size, width=2, grow_from=16),
                  lambda size: TransGANGenerator(image_size=size, bottom_size=8, dims=(16, 8, 4), depths=(1, 1, 1),
                                                 num_heads=2, grow_from=8),
                  lambda size: TransGANDiscriminator(image_size=size, patch_size=4, dim=8, depth=1, num_heads=2,
                                                     grow_from=16)):
        with pytest.raises(ValueError, match=r"grow_from needs a square image_size, got \[32, 48\]"):
            build([32, 48])
        assert build([32, 32]).growth.resolutions == build(32).growth.resolutions
