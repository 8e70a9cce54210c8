"""Contract suite: every network in every file of sagan/models, at each of its TINY presets.

Image networks: generators map noise `[N, z_dim]` (and labels) to images `[N, C, H, W]` in [-1, 1],
discriminators images to logits `[N]` (a packing discriminator, `pack` > 1, one logit per group of
`pack` images: `[N / pack]`). Video networks (they have `num_frames`) do the same with clips
`[N, T, C, H, W]` in place of images. Repair networks (`repair = True`) take a damaged image `[N, C, H, W]` and a
hole mask `[N, 1, H, W]` (None for blind ones, `use_mask=False`) at any height and width that are
multiples of their `stride`: generators return images of the same shape in [-1, 1], discriminators patch
logits `[N, H / stride, W / stride]`. Text networks (they have `vocab_size`): generators map token ids
`[N, T]` to next-token logits `[N, T, V]`, discriminators (soft) one-hot vectors `[N, T, V]` to `[N]`.
Audio networks (they have `num_samples`): waveforms `[N, 1, num_samples]` in [-1, 1] in place of images.
"""

import importlib
import pkgutil

import pytest
import torch
from torch.testing import assert_close

import sagan.models
from sagan.errors import image_hw

PRESETS = [
    pytest.param(cls, kwargs, id=f"{module.name}:{name}")
    for module in pkgutil.iter_modules(sagan.models.__path__)
    for name, (cls, kwargs) in getattr(importlib.import_module(f"sagan.models.{module.name}"), "TINY", {}).items()
]


def _is_generator(net: torch.nn.Module) -> bool:
    return hasattr(net, "z_dim") or hasattr(net, "sample")


def _data_shape(net: torch.nn.Module) -> tuple[int, ...]:
    """What one generated or judged sample is: a waveform `[1, L]` or an image `[C, H, W]`."""
    return (1, net.num_samples) if hasattr(net, "num_samples") else (net.channels, *image_hw(net.image_size))


def _is_repair(net: torch.nn.Module) -> bool:
    return getattr(net, "repair", False)


def _repair_inputs(net: torch.nn.Module, n: int, height: int, width: int, seed: int = 1):
    """A damaged image and its mask (a random hole of about half the pixels; None for a blind network)."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, net.channels, height, width, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, height, width, generator=g) < 0.5).float()
    return clean * (1 - mask), mask if net.use_mask else None


def _inputs(net: torch.nn.Module, n: int, seed: int = 1):
    """Inputs for `n` outputs (`n * pack` images for a packing discriminator)."""
    g = torch.Generator().manual_seed(seed)
    if _is_repair(net):
        return _repair_inputs(net, n, *image_hw(net.image_size), seed)
    n = n * getattr(net, "pack", 1)
    if hasattr(net, "vocab_size"):
        if _is_generator(net):
            return (torch.randint(0, net.vocab_size, (n, net.seq_len), generator=g),)
        return (torch.softmax(3 * torch.randn(n, net.seq_len, net.vocab_size, generator=g), dim=-1),)
    y = torch.randint(0, net.num_classes, (n,), generator=g) if net.num_classes else None
    if hasattr(net, "z_dim"):
        return torch.randn(n, net.z_dim, generator=g), y
    frames = (net.num_frames,) if hasattr(net, "num_frames") else ()
    return torch.rand(n, *frames, *_data_shape(net), generator=g) * 2 - 1, y


def _check_output(net, out, n, height=None, width=None):
    if _is_repair(net):
        height, width = height or image_hw(net.image_size)[0], width or image_hw(net.image_size)[1]
        if out.dim() == 4:  # a generator
            assert out.shape == (n, net.channels, height, width)
            assert out.min() >= -1 and out.max() <= 1
        else:
            assert out.shape == (n, height // net.stride, width // net.stride)
    elif hasattr(net, "vocab_size") and _is_generator(net):
        assert out.shape == (n, net.seq_len, net.vocab_size)
    elif hasattr(net, "z_dim"):
        frames = (net.num_frames,) if hasattr(net, "num_frames") else ()
        assert out.shape == (n, *frames, *_data_shape(net))
        if not (net.training and getattr(net, "raw_training_output", False)):  # else clamped in eval mode only
            assert out.min() >= -1 and out.max() <= 1
    else:
        assert out.shape == (n,)
    assert torch.isfinite(out).all()


def test_presets_found():
    assert len(PRESETS) >= 4
    assert any(kwargs.get("vocab_size") for _, kwargs in (p.values for p in PRESETS))  # text networks too
    assert len(REPAIR_PRESETS) >= 2  # and repair networks
    non_square = {cls.__name__ for cls, kwargs in (p.values for p in PRESETS) if isinstance(kwargs.get("image_size"), tuple)}
    assert {"SAGANGenerator", "SAGANDiscriminator", "TransGANGenerator", "TransGANDiscriminator",
            "TransGANMultiScaleDiscriminator", "InpaintGenerator", "PatchDiscriminator"} <= non_square


@pytest.mark.parametrize(("cls", "kwargs"), PRESETS)
def test_shapes_and_range(cls, kwargs):
    net = cls(**kwargs)
    _check_output(net, net(*_inputs(net, 3)), 3)
    net.eval()  # samples and metrics come from eval mode: images in [-1, 1] for every generator
    _check_output(net, net(*_inputs(net, 3)), 3)


@pytest.mark.parametrize(("cls", "kwargs"), PRESETS)
def test_batch_of_one(cls, kwargs):
    net = cls(**kwargs)
    _check_output(net, net(*_inputs(net, 1)), 1)
    net.eval()
    _check_output(net, net(*_inputs(net, 1)), 1)


@pytest.mark.parametrize(("cls", "kwargs"), PRESETS)
def test_every_parameter_gets_a_finite_gradient(cls, kwargs):
    net = cls(**kwargs)
    for module in net.modules():  # open the attention gates, else their inputs' gradients are exactly 0
        if hasattr(module, "gamma"):
            torch.nn.init.constant_(module.gamma, 0.5)
    net(*_inputs(net, 4)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} unused (breaks DDP)"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize(("cls", "kwargs"), PRESETS)
def test_deterministic(cls, kwargs):
    torch.manual_seed(3)
    a = cls(**kwargs)
    torch.manual_seed(3)
    b = cls(**kwargs)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    inputs = _inputs(a, 4)
    torch.testing.assert_close(a(*inputs), b(*inputs), rtol=0, atol=0)
    a.eval()
    torch.testing.assert_close(a(*inputs), a(*inputs), rtol=0, atol=0)


REPAIR_PRESETS = [p for p in PRESETS if getattr(p.values[0], "repair", False)]


@pytest.mark.parametrize(("cls", "kwargs"), REPAIR_PRESETS)
def test_repair_networks_take_any_multiple_of_their_stride(cls, kwargs):
    net = cls(**kwargs).eval()
    for height, width in [(net.stride, 3 * net.stride), (5 * net.stride, 2 * net.stride), (net.stride, net.stride)]:
        _check_output(net, net(*_repair_inputs(net, 2, height, width)), 2, height, width)
    with pytest.raises(ValueError, match=f"multiples of {net.stride}"):
        net(*_repair_inputs(net, 1, net.stride + 1, net.stride))


@pytest.mark.parametrize(("cls", "kwargs"), [p for p in PRESETS if p.values[1].get("num_classes")])
def test_conditional_models_use_the_class(cls, kwargs):
    net = cls(**kwargs)
    for module in net.modules():  # give every class its own embedding values
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight)
    x, _ = _inputs(net, 4)
    zeros = torch.zeros(4, dtype=torch.long)
    assert not torch.allclose(net(x, zeros), net(x, zeros + 1))


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_sagan_builds_every_supported_resolution(size):
    from sagan.models.sagan import SAGANDiscriminator, SAGANGenerator

    g = SAGANGenerator(image_size=size, channels=3, z_dim=4, width=1, attn_resolutions=(16,))
    d = SAGANDiscriminator(image_size=size, channels=3, width=1, attn_resolutions=(16,))
    images = g(torch.randn(1, 4))
    assert images.shape == (1, 3, size, size)
    assert d(images).shape == (1,)


@pytest.mark.parametrize(
    "kwargs", [dict(image_size=48), dict(attn_resolutions=(4,)), dict(channel_multipliers=(4, 4))]
)
def test_sagan_rejects_impossible_layouts(kwargs):
    from sagan.models.sagan import SAGANGenerator

    with pytest.raises(ValueError):
        SAGANGenerator(**{"image_size": 32, **kwargs})


@pytest.mark.parametrize(
    ("cls_path", "kwargs", "message"),
    [
        ("sagan.SAGANGenerator", dict(image_size=(64, 90)), r"image_size \[64, 90\] must be one side or \[height, width\] of positive multiples of 16"),
        ("sagan.SAGANDiscriminator", dict(image_size=(32, 42)), "positive multiples of 4"),
        ("sagan.SAGANGenerator", dict(image_size=(48, 96)), "with the shorter side among them"),
        ("sagan.SAGANGenerator", dict(image_size=(64, 96, 3)), r"\[64, 96, 3\] must be one side or \[height, width\]"),
        ("transgan.TransGANGenerator", dict(image_size=(32, 50)), "multiples of 4"),
        ("transgan.TransGANDiscriminator", dict(image_size=(32, 50), patch_size=4), "multiples of 4"),
        ("transgan.TransGANMultiScaleDiscriminator", dict(image_size=(32, 34), patch_size=2), "multiples of 4"),
        ("inpaint.InpaintGenerator", dict(image_size=(32, 20), num_down=3), "multiples of 8"),
        ("inpaint.PatchDiscriminator", dict(image_size=(0, 16)), "positive multiples of 8"),
    ],
)
def test_non_square_sizes_are_checked_in_one_line(cls_path, kwargs, message):
    module, name = cls_path.split(".")
    cls = getattr(importlib.import_module(f"sagan.models.{module}"), name)
    with pytest.raises(ValueError, match=message) as error:
        cls(**kwargs)
    assert "\n" not in str(error.value)


def test_a_square_pair_builds_the_square_network():
    """[32, 32] is 32: the same parameters, so checkpoints and links do not care how the size was written."""
    from sagan.models.sagan import SAGANGenerator

    torch.manual_seed(0)
    square = SAGANGenerator(image_size=32, z_dim=4, width=1)
    torch.manual_seed(0)
    pair = SAGANGenerator(image_size=[32, 32], z_dim=4, width=1)
    assert pair.image_size == 32
    for (name, p), q in zip(square.state_dict().items(), pair.state_dict().values()):
        assert_close(p, q, rtol=0, atol=0, msg=name)


def test_non_square_sagan_generator_starts_from_a_map_of_the_image_aspect():
    from sagan.models.sagan import SAGANGenerator

    g = SAGANGenerator(image_size=(64, 96), z_dim=4, width=1, attn_resolutions=(32,))
    assert g.start_hw == (4, 6)
    assert g(torch.randn(2, 4)).shape == (2, 3, 64, 96)


def test_packing_discriminator_judges_each_group_as_one_input():
    from sagan.models.sagan import SAGANDiscriminator

    torch.manual_seed(0)
    d = SAGANDiscriminator(image_size=32, channels=3, width=4, attn_resolutions=(16,), pack=2).eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    scores = d(x)
    assert scores.shape == (2,)
    assert_close(d(x[2:]), scores[1:])  # a group's score depends on its own images only
    assert not torch.allclose(d(x[[1, 0, 2, 3]])[0], scores[0])  # the order within a group is seen: channels
    with pytest.raises(ValueError, match="divisible by 2"):
        d(x[:3])
    with pytest.raises(ValueError, match="unconditional"):
        SAGANDiscriminator(image_size=32, channels=3, num_classes=10, width=4, pack=2)
