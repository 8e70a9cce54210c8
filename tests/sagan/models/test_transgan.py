"""TransGAN generator and ViT discriminator beyond the contract suite: conditioning, local attention,
gradient penalties through the transformer, bf16, impossible layouts, and training through the CLI."""

import pytest
import torch
from conftest import EXPERIMENTS
from torch.testing import assert_close

from sagan.commands import main
from sagan.evaluation.checkpoint import load_gan
from sagan.layers.augment import DiffAugment
from sagan.losses import GradientPenalty, R1Penalty
from sagan.models.transgan import TINY, TransGANDiscriminator, TransGANGenerator


def tiny(name: str, **overrides) -> torch.nn.Module:
    cls, kwargs = TINY[name]
    return cls(**{**kwargs, **overrides})


def test_noise_reaches_the_blocks_through_self_modulated_norms():
    g = tiny("generator-32-cond")
    with torch.no_grad():  # the token grid no longer depends on z: only the modulated norms see it
        g.stem.weight.zero_()
    y = torch.tensor([0, 1])
    z = torch.randn(2, g.z_dim)
    assert not torch.allclose(g(z, y), g(torch.randn(2, g.z_dim), y))
    g_plain = tiny("generator-32-cond", norm="layer")
    with torch.no_grad():
        g_plain.stem.weight.zero_()
    assert_close(g_plain(z, y), g_plain(torch.randn(2, g.z_dim), y))  # nothing else carries z


@pytest.mark.parametrize("mode", ["window", "grid", "alternate"])
def test_generator_with_windows_as_large_as_the_map_is_the_full_attention_generator(mode):
    kwargs = dict(image_size=16, channels=3, z_dim=4, bottom_size=4, dims=(16, 8, 4), depths=(1, 1, 2), num_heads=2,
                  style_dim=4)
    full = TransGANGenerator(**kwargs)
    local = TransGANGenerator(**kwargs, window_size=16, window_resolutions=(8, 16), window_mode=mode)
    local.load_state_dict(full.state_dict())
    z = torch.randn(3, 4)
    assert_close(local(z), full(z))
    smaller = TransGANGenerator(**kwargs, window_size=4, window_resolutions=(8, 16), window_mode=mode)
    smaller.load_state_dict(full.state_dict())
    assert not torch.allclose(smaller(z), full(z))


@pytest.mark.parametrize("penalty", [GradientPenalty(), R1Penalty()], ids=repr)
@pytest.mark.parametrize("name", ["discriminator-32", "discriminator-32-cond"])
def test_penalty_double_backward_through_the_transformer_discriminator(name, penalty):
    d = tiny(name)
    augment = DiffAugment()
    critic = lambda x, y: d(augment(x), y)  # noqa: E731 - as GAN.critic composes them
    real, fake = torch.rand(4, d.channels, 32, 32) * 2 - 1, torch.rand(4, d.channels, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 2, 0]) if d.num_classes else None
    value = penalty(critic, real, fake, y)
    value.backward()
    assert value > 0
    for param_name, p in d.named_parameters():  # biases that only shift the logit do not change its gradient
        assert p.grad is None or torch.isfinite(p.grad).all(), param_name
    for block in d.blocks:  # the second backward went through every attention layer
        assert block.attention.qkv.parametrizations.weight.original.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["generator-32-cond", "discriminator-32", "discriminator-32-cond"])
def test_bf16_autocast_forward_and_backward_on_cpu(name):
    net = tiny(name).eval()  # eval: spectral norms keep their estimate, so both passes see the same weights
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (2,), generator=g) if net.num_classes else None
    x = torch.randn(2, net.z_dim) if hasattr(net, "z_dim") else torch.rand(2, net.channels, 32, 32) * 2 - 1
    with torch.no_grad():
        reference = net(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, y)
    assert not torch.equal(out.float(), reference)  # the matrix products ran in bf16
    # bf16 keeps ~3 significant digits per product: close on average, a little looser at the worst pixel
    assert_close((out.float() - reference).abs().mean(), torch.tensor(0.0), rtol=0, atol=0.02)
    assert_close(out.float(), reference, rtol=0, atol=0.2)
    out.float().square().mean().backward()
    for param_name, p in net.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), param_name


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(image_size=64),  # 8 * 2^2 = 32
        dict(dims=(16, 8), depths=(1, 1, 1)),
        dict(num_heads=3),
        dict(window_resolutions=(12,)),
        dict(window_size=5, window_resolutions=(16,)),
        dict(norm="batch"),
        dict(upsample="nearest"),
        dict(pos_encoding="sinusoidal", dims=(18, 6, 6), num_heads=1),
    ],
)
def test_generator_rejects_impossible_layouts(kwargs):
    with pytest.raises(ValueError):
        TransGANGenerator(**{**TINY["generator-32"][1], **kwargs})


@pytest.mark.parametrize(
    "kwargs", [dict(patch_size=5), dict(num_heads=3), dict(pool="max"), dict(attention="cosine"), dict(spectral_norm="yes")]
)
def test_discriminator_rejects_impossible_layouts(kwargs):
    with pytest.raises(ValueError):
        TransGANDiscriminator(**{**TINY["discriminator-32"][1], **kwargs})


def test_impossible_layout_from_the_cli_is_one_line_and_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS / "transgan_digits.yaml"), "--run_root", str(tmp_path),
              "--data.init_args.image_size=64"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert "Traceback" not in err and len(lines) == 1 and "not 64px" in lines[0], err
    assert not list(tmp_path.rglob("*.ckpt"))


def test_improved_spectral_norm_keeps_the_initial_scale():
    d = tiny("discriminator-32", spectral_norm="improved")
    weight = d.head.parametrizations.weight.original
    sigma = torch.linalg.matrix_norm(d.head.weight.detach(), ord=2)
    assert_close(sigma, torch.linalg.matrix_norm(weight.detach(), ord=2), rtol=1e-3, atol=0)
    plain = tiny("discriminator-32", spectral_norm="plain")
    assert_close(torch.linalg.matrix_norm(plain.head.weight.detach(), ord=2), torch.tensor(1.0), rtol=1e-3, atol=0)


# The default TransGAN experiment, shrunk to seconds.
TINY_TRANSGAN = [
    "--config", str(EXPERIMENTS / "transgan_digits.yaml"),
    "--data.batch_size=4",
    "--model.generator.init_args.dims=[16, 8, 4]", "--model.generator.init_args.depths=[1, 1, 1]",
    "--model.generator.init_args.num_heads=2", "--model.generator.init_args.z_dim=8",
    "--model.generator.init_args.style_dim=8",
    "--model.discriminator.init_args.dim=8", "--model.discriminator.init_args.depth=1",
    "--model.discriminator.init_args.num_heads=2",
    "--model.grid_size=4", "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]


def test_transgan_trains_through_the_cli_with_wgan_gp_and_reloads(tmp_path):
    main([
        "fit", *TINY_TRANSGAN, "--g_iters=2", "--model.init_args.n_critic=2", "--tracker=csv",
        "--run_root", str(tmp_path), "--model.loss=sagan.losses.WassersteinLoss",
        "--model.loss.init_args.drift=0.001", "--model.penalty=sagan.losses.GradientPenalty",
        "--trainer.log_every_n_steps=1",
    ])
    run = next((tmp_path / "transgan_digits").iterdir())
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 6  # 2 x (2 D steps + 1 G step)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/d_penalty" in header
    model = load_gan(run / "checkpoints" / "last.ckpt")
    assert isinstance(model.generator, TransGANGenerator) and isinstance(model.augment, DiffAugment)
    assert model.loss.drift == 0.001
    images = model(torch.randn(3, 8), torch.tensor([0, 5, 9]))
    assert images.shape == (3, 1, 32, 32)


def test_transgan_trains_non_square_through_the_cli(tmp_path):
    main(["fit", *TINY_TRANSGAN, "--g_iters=1", "--tracker=none", "--run_root", str(tmp_path),
          "--data.init_args.image_size=[32,48]", "--model.generator.init_args.window_resolutions=[32]"])
    model = load_gan(next((tmp_path / "transgan_digits").iterdir()) / "checkpoints" / "last.ckpt")
    assert model.generator.grids == [(8, 12), (16, 24), (32, 48)] and model.discriminator.image_size == (32, 48)
    assert model(torch.randn(2, 8), torch.tensor([0, 5])).shape == (2, 1, 32, 48)


def test_linear_output_is_unbounded_in_training_and_clamped_in_eval():
    g = tiny("generator-32-authors")
    with torch.no_grad():
        g.to_pixels.weight.mul_(50)  # push the pixels far outside [-1, 1]
    z = torch.randn(4, g.z_dim)
    raw = g(z)
    assert raw.abs().max() > 1 and g.raw_training_output
    g.eval()
    assert_close(g(z), raw.clamp(-1, 1))  # noise strengths are 0 at start: the same pass, clamped
    assert not tiny("generator-32").raw_training_output


def test_multiscale_discriminator_streams():
    """Both patch streams reach the logit: the coarse stream (4x4 patches, 1/4 of the channels) joins after
    the fine stage's pooling, and the fine stage (2x2 patches) sees structure inside a 4x4 patch."""
    d = tiny("discriminator-32-multiscale", patch_size=2).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    reference = d(x)
    with torch.no_grad():
        d.embed_coarse.weight.zero_()
        d.embed_coarse.bias.zero_()
    assert not torch.allclose(d(x), reference)
    assert d.blocks_fine[0].attention.rel_pos.side == 16 and d.blocks_coarse[0].attention.rel_pos.side == 8
    assert d.last_block.attention.rel_pos is None and d.last_block.attention.noise_strength is not None
    with pytest.raises(ValueError, match="multiples of 6 \\(2 \\* patch_size\\)"):
        tiny("discriminator-32-multiscale", patch_size=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny("discriminator-32-multiscale", dim=18)
    with pytest.raises(ValueError, match="num_heads"):
        tiny("discriminator-32-multiscale", num_heads=0)


@pytest.mark.parametrize("penalty", [GradientPenalty(), R1Penalty()], ids=repr)
def test_penalty_double_backward_through_the_multiscale_discriminator(penalty):
    d = tiny("discriminator-32-multiscale")
    for module in d.modules():
        if getattr(module, "noise_strength", None) is not None:
            torch.nn.init.constant_(module.noise_strength, 0.1)
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    value = penalty(d, real, fake)
    value.backward()
    for blk in [*d.blocks_fine, *d.blocks_coarse, d.last_block]:
        assert blk.attention.qkv.weight.grad.abs().sum() > 0
    assert d.blocks_fine[0].attention.rel_pos.table.grad.abs().sum() > 0
