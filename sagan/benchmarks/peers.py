"""The peers of `sagan bench-gpu --peers DIR`, run on their own code on the same GPU as ours.

DIR holds checkouts of the two codebases (never part of this repository; clone or copy them yourself):

    DIR/Self-Attention-GAN   github.com/heykeetae/Self-Attention-GAN (the most-used PyTorch SAGAN)
    DIR/TransGAN             github.com/VITA-Group/TransGAN (the official TransGAN)

- SAGAN (64x64, batch 64, hinge, as its README's CelebA command): its `Generator`/`Discriminator` and
  Adam settings from its `trainer.py`, and the body of its training loop restated here, because that
  loop's logging (`tensor.data[0]`) no longer runs on current PyTorch. One D step on real and generated
  images, then one G step on fresh noise, as its loop does.
- TransGAN (CIFAR-10, its `exps/cifar_train.py` arguments): its models (`ViT_custom_rp` generator,
  `ViT_custom_scale2_rp_noise` discriminator) and its own `functions.train` on a loader of random
  CIFAR-sized images: WGAN-GP with the epsilon term, n_critic 4, G batch 128, D batch 64, its EMA and
  gradient clipping, all as in its code.

TransGAN's code also needs `python-dateutil` and `tensorboardX` (pure-Python wheels: carry them to an
offline GPU machine) and gets a stand-in for `torch._six`, which PyTorch 2 removed. Each function
returns the measurements `sagan bench` returns, with `suite` set to the benchmark of ours it is compared
with. Both need CUDA. Checked on a CPU (with `.cuda()` as a no-op): the SAGAN step runs, and TransGAN's
networks build with the authors' parameter counts (G 83,312,495, D 10,210,400) and its `functions`
imports; neither has been timed on a GPU yet.
"""

import collections.abc
import sys
import time
import types
from pathlib import Path

import torch


def _measure(step, iters: int, warmup: int, images_per_iter: int) -> tuple[float, float]:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iters
    return seconds, torch.cuda.max_memory_allocated() / 2**20


def sagan_peer(peers: str, iters: int, warmup: int, batch_size: int = 64) -> dict:
    """heykeetae/Self-Attention-GAN at 64x64, batch 64, hinge loss (one D and one G step per iteration)."""
    root = Path(peers) / "Self-Attention-GAN"
    sys.path.insert(0, str(root))
    from sagan_models import Discriminator, Generator  # the peer's own networks

    z_dim = 128
    generator = Generator(batch_size, 64, z_dim, 64).cuda()
    discriminator = Discriminator(batch_size, 64, 64).cuda()
    params = lambda net: filter(lambda p: p.requires_grad, net.parameters())  # noqa: E731 - as trainer.py
    g_optimizer = torch.optim.Adam(params(generator), 1e-4, [0.0, 0.9])
    d_optimizer = torch.optim.Adam(params(discriminator), 4e-4, [0.0, 0.9])
    real = torch.rand(batch_size, 3, 64, 64, device="cuda") * 2 - 1

    def step():  # the body of trainer.py's loop with adv_loss="hinge", without its logging and saving
        d_out_real, _, _ = discriminator(real)
        d_loss_real = torch.nn.ReLU()(1.0 - d_out_real).mean()
        fake, _, _ = generator(torch.randn(batch_size, z_dim, device="cuda"))
        d_out_fake, _, _ = discriminator(fake)
        d_loss = d_loss_real + torch.nn.ReLU()(1.0 + d_out_fake).mean()
        d_optimizer.zero_grad()
        g_optimizer.zero_grad()
        d_loss.backward()
        d_optimizer.step()
        fake, _, _ = generator(torch.randn(batch_size, z_dim, device="cuda"))
        g_loss = -discriminator(fake)[0].mean()
        d_optimizer.zero_grad()
        g_optimizer.zero_grad()
        g_loss.backward()
        g_optimizer.step()

    seconds, peak = _measure(step, iters, warmup, batch_size)
    return _result("sagan_64_b64", "heykeetae/Self-Attention-GAN", batch_size, 1, seconds, peak)


def transgan_peer(peers: str, iters: int, warmup: int) -> dict:
    """VITA-Group/TransGAN's CIFAR-10 recipe through its own `functions.train`."""
    root = Path(peers) / "TransGAN"
    sys.path.insert(0, str(root))
    # its helpers import `torch._six`, which PyTorch 2 removed: the names they use, from where they live now
    sys.modules.setdefault("torch._six", types.SimpleNamespace(
        container_abcs=collections.abc, string_classes=(str,), int_classes=int, inf=float("inf"),
    ))
    argv, sys.argv = sys.argv, [
        "train_derived.py", "-gen_bs", "128", "-dis_bs", "64", "--dataset", "cifar10", "--bottom_width", "8",
        "--img_size", "32", "--max_iter", "500000", "--gen_model", "ViT_custom_rp", "--dis_model",
        "ViT_custom_scale2_rp_noise", "--df_dim", "384", "--d_heads", "4", "--d_depth", "3", "--g_depth", "5,4,2",
        "--dropout", "0", "--latent_dim", "256", "--gf_dim", "1024", "--g_lr", "0.0001", "--d_lr", "0.0001",
        "--optimizer", "adam", "--loss", "wgangp-eps", "--wd", "1e-3", "--beta1", "0", "--beta2", "0.99", "--phi",
        "1", "--init_type", "xavier_uniform", "--n_critic", "4", "--print_freq", "1000000", "--grow_steps", "0", "0",
        "--fade_in", "0", "--patch_size", "2", "--ema_kimg", "500", "--ema_warmup", "0.1", "--ema", "0.9999",
        "--diff_aug", "translation,cutout,color", "--gpu", "0",
    ]
    try:
        import cfg  # the peer's own argument parser
        import functions
        import models_search.ViT_custom_rp as gen_module
        import models_search.ViT_custom_scale2_rp_noise as dis_module

        args = cfg.parse_args()
    finally:
        sys.argv = argv
    args.rank, args.world_size, args.max_epoch = 0, 1, 1
    generator = gen_module.Generator(args=args).cuda(0)
    discriminator = dis_module.Discriminator(args=args).cuda(0)
    g_optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, generator.parameters()), 1e-4, (0.0, 0.99))
    d_optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, discriminator.parameters()), 1e-4, (0.0, 0.99))
    average = [p.detach().cpu().clone() for p in generator.parameters()]  # its EMA lives on the CPU
    writer = {"writer": type("NoWriter", (), {"add_scalar": lambda *a, **k: None})(), "train_global_steps": 0}
    fixed_z = torch.randn(16, args.latent_dim, device="cuda")
    per_iter = args.n_critic  # D batches per G iteration

    def epoch(batches: int):
        loader = [(torch.rand(args.dis_batch_size, 3, 32, 32) * 2 - 1, torch.zeros(args.dis_batch_size))] * batches
        functions.train(args, generator, discriminator, g_optimizer, d_optimizer, average, loader, 0, writer, fixed_z)

    epoch(warmup * per_iter)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    epoch(iters * per_iter)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iters
    peak = torch.cuda.max_memory_allocated() / 2**20
    return _result("transgan_cifar10_gp", "VITA-Group/TransGAN", args.dis_batch_size, per_iter, seconds, peak)


def _result(suite: str, code: str, batch_size: int, n_critic: int, seconds: float, peak: float) -> dict:
    return {
        "suite": suite, "variant": "peer", "bench": code, "device": torch.cuda.get_device_name(),
        "precision": "32", "compile": False, "batch_size": batch_size, "n_critic": n_critic,
        "ms_per_iter": round(1000 * seconds, 2), "img_per_s": round(batch_size * n_critic / seconds, 1),
        "peak_mem_mb": round(peak, 1),
    }


PEERS = {"sagan_peer": sagan_peer, "transgan_peer": transgan_peer}
