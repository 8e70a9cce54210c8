"""Several processes: a real 2-process DDP training on CPU (gloo), strategy choice, SyncBatchNorm."""

import subprocess
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, TINY_DIGITS, TINY_INPAINT, TINY_ORACLE, tiny
from probes import fit_two_processes
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, StrategyRegistry
from torch import nn
from torch.testing import assert_close

from datamodules.text.oracle import OracleDataModule
from sagan.cli import SaganCLI
from sagan.evaluation.checkpoint import load_gan
from sagan.training.checkpoints import load_module
from sagan.errors import UsageError
from sagan.tasks.image import ImageGAN
from sagan.tasks.repair import RepairGAN
from sagan.tasks.text import TextGAN
from sagan.training.distributed import GANDDPStrategy


def test_two_processes_keep_identical_weights_and_read_different_data(tmp_path):
    rank0, rank1 = fit_two_processes(tmp_path, *TINY_DIGITS, "--g_iters=3")
    assert rank0["world_size"] == 2 and rank0["wrapped"] == ["discriminator", "generator"]
    # gradients were all-reduced: both ranks end with the same networks, average and Adam moments
    assert_close(rank1["params"], rank0["params"], rtol=0, atol=0)
    assert_close(rank1["ema"], rank0["ema"], rtol=0, atol=0)
    states = [[opt["state"] for opt in rank["optimizers"]] for rank in (rank0, rank1)]
    assert_close(states[1], states[0], rtol=0, atol=0)
    assert all(s["step"].item() == 3 for opt in states[0] for s in opt.values())  # 3 G and 3 D steps taken
    # each rank trained on its own shard (the digits hold no duplicate image) and drew its own noise
    images0, images1 = torch.cat(rank0["batches"]).flatten(1), torch.cat(rank1["batches"]).flatten(1)
    assert len(images0) == len(images1) == 3 * 8
    assert not (images0[:, None] == images1[None]).all(dim=2).any()
    assert not any(torch.equal(a, b) for a, b in zip(rank0["noise"], rank1["noise"]))
    # one run directory, written by rank 0, with a checkpoint of the trained networks
    (run,) = (tmp_path / "runs" / "sagan_digits").iterdir()
    model = load_gan(run / "checkpoints" / "last.ckpt")
    assert_close(dict(model.named_parameters()), rank0["params"], rtol=0, atol=0)


@pytest.mark.slow  # a 2-process run; the fast check of what DDP needs is in tests/sagan/models/test_growing.py
def test_a_growing_gan_trains_through_its_stages_on_two_processes(tmp_path):
    # 16 images a batch over both ranks: batches 0-1 at 8x8, 2-3 at 16x16 (fading in), 4-5 at 32x32. No
    # unused-parameter error: the parts a stage does not run still get (zero) gradients
    growing = [
        "--trainer.limit_val_batches=0", "--model.generator.init_args.grow_from=8",
        "--model.discriminator.init_args.grow_from=8", "--model.growing=sagan.tasks.growing.GrowthSchedule",
        "--model.growing.init_args.stage_images=[32,32]", "--model.growing.init_args.fade_images=32",
    ]
    rank0, rank1 = fit_two_processes(tmp_path, *TINY_DIGITS, "--g_iters=6", *growing)
    assert_close(rank1["params"], rank0["params"], rtol=0, atol=0)
    (run,) = (tmp_path / "runs" / "sagan_digits").iterdir()
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["growth"] == {"images_seen": 6 * 16, "stage": 2}


@pytest.mark.slow  # a 2-process run; the fast check of what DDP needs is the next test
def test_text_gan_on_two_processes_keeps_identical_weights_and_reads_different_data(tmp_path):
    # 2 MLE batches, then 2 adversarial batches (a D step and a G step each): one epoch of 4 batches per rank
    rank0, rank1 = fit_two_processes(tmp_path, *TINY_ORACLE, "--g_iters=4", "--model.pretrain_steps=2")
    assert rank0["world_size"] == 2 and rank0["wrapped"] == ["discriminator", "generator"]
    # MLE, D and G gradients were all-reduced: both ranks end with the same networks and Adam moments
    assert_close(rank1["params"], rank0["params"], rtol=0, atol=0)
    states = [[opt["state"] for opt in rank["optimizers"]] for rank in (rank0, rank1)]
    assert_close(states[1], states[0], rtol=0, atol=0)
    steps = [{s["step"].item() for s in opt.values()} for opt in states[0]]
    assert steps == [{2.0}, {2.0}, {2.0}]  # MLE, adversarial G, D
    # the ranks' shards of the epoch are disjoint and together the whole training set
    seen = torch.cat(rank0["batches"] + rank1["batches"])
    train, _, _ = OracleDataModule(num_train=64, num_valid=16, num_test=8, vocab_size=30, seq_len=6)._splits()
    assert len(seen) == len(train) == 64
    assert torch.equal(_sorted_rows(seen), _sorted_rows(train))
    # each rank drew its own Gumbel noise: the generator's samples differ although its weights do not
    assert len(rank0["noise"]) == len(rank1["noise"]) > 0
    assert not any(torch.equal(a, b) for a, b in zip(rank0["noise"], rank1["noise"]))
    (run,) = (tmp_path / "runs" / "textgan_oracle").iterdir()
    model = load_module(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, TextGAN)
    assert_close(dict(model.named_parameters()), rank0["params"], rtol=0, atol=0)


def test_text_gan_sends_every_pass_that_builds_a_graph_through_its_networks_wrappers():
    # what GANDDPStrategy relies on in both phases: MLE, then D and G (whose sampling builds the graph)
    from sagan.models.text_transformer import TINY as TEXT_TINY

    (g_cls, g_kwargs), (d_cls, d_kwargs) = TEXT_TINY["text-generator"], TEXT_TINY["text-discriminator"]
    vocabulary = OracleDataModule(num_train=16, num_valid=8, num_test=8, vocab_size=11, seq_len=6).vocabulary
    model = TextGAN(g_cls(**g_kwargs), d_cls(**d_kwargs), vocabulary=vocabulary)
    calls = []
    model.distribute(lambda inner: Recording(inner, calls))
    real = torch.randint(0, len(vocabulary), (4, 6))
    model.mle_loss(real).backward()
    _, fake = model._net("generator", "sample")(4, 1.0)
    model.discriminator_loss(real, fake)[0].backward()
    model.generator_loss(fake, real).backward()
    expected = [("TextTransformerGenerator", "forward"), ("TextTransformerGenerator", "sample")]
    d_passes = 2 + 1 + model.loss.generator_needs_real  # D's loss: real and fake; G's loss: fake (and real)
    expected += [("TextTransformerDiscriminator", "forward")] * d_passes
    assert calls == expected
    assert all(p.grad is not None for p in model.generator.parameters())
    assert all(p.grad is not None for p in model.discriminator.parameters())


@pytest.mark.slow
def test_repair_gan_on_two_processes_keeps_identical_weights_and_reads_different_data(tmp_path):
    rank0, rank1 = fit_two_processes(tmp_path, *TINY_INPAINT, "--g_iters=2", "--trainer.limit_val_batches=0")
    assert rank0["world_size"] == 2 and rank0["wrapped"] == ["discriminator", "generator"]
    assert_close(rank1["params"], rank0["params"], rtol=0, atol=0)
    assert_close(rank1["ema"], rank0["ema"], rtol=0, atol=0)
    states = [[opt["state"] for opt in rank["optimizers"]] for rank in (rank0, rank1)]
    assert_close(states[1], states[0], rtol=0, atol=0)
    assert all(s["step"].item() == 2 for opt in states[0] for s in opt.values())  # 2 G and 2 D steps taken
    damaged0, damaged1 = torch.cat(rank0["batches"]).flatten(1), torch.cat(rank1["batches"]).flatten(1)
    assert len(damaged0) == len(damaged1) == 2 * 8
    assert not (damaged0[:, None] == damaged1[None]).all(dim=2).any()
    (run,) = (tmp_path / "runs" / "inpaint_digits").iterdir()
    model = load_module(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, RepairGAN)
    assert_close(dict(model.named_parameters()), rank0["params"], rtol=0, atol=0)


class Recording(nn.Module):
    """A stand-in for a network's DDP wrapper that notes (network class, method) of every pass through it."""

    def __init__(self, inner, calls: list):
        super().__init__()
        self.inner, self.calls = inner, calls

    def forward(self, *args, method="forward", **kwargs):
        self.calls.append((type(self.inner.network).__name__, method))
        return self.inner(*args, method=method, **kwargs)


def test_repair_gan_sends_every_pass_that_builds_a_graph_through_its_networks_wrappers():
    # what GANDDPStrategy relies on (the 2-process run above is marked slow): one wrapper per network
    from sagan.models.inpaint import TINY as REPAIR_TINY

    (g_cls, g_kwargs), (d_cls, d_kwargs) = REPAIR_TINY["inpaint-generator"], REPAIR_TINY["patch-discriminator"]
    model = RepairGAN(g_cls(**g_kwargs), d_cls(**d_kwargs))
    calls = []
    model.distribute(lambda inner: Recording(inner, calls))
    clean = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    damaged = clean * (1 - mask)
    output = model._net("generator")(damaged, mask)
    model.discriminator_loss(clean, output, mask)[0].backward()
    model.generator_loss(output, damaged, mask, clean)[0].backward()
    expected = [("InpaintGenerator", "forward"), ("PatchDiscriminator", "forward"), ("PatchDiscriminator", "features")]
    assert calls == expected
    assert all(p.grad is not None for p in model.generator.parameters())
    with torch.no_grad():  # passes without a graph use the bare networks
        model.repair(damaged, mask)
    assert len(calls) == 3


def _sorted_rows(tokens: torch.Tensor) -> torch.Tensor:
    """The rows of `[N, T]` token ids in lexicographic order (a multiset of sequences)."""
    for column in reversed(range(tokens.shape[1])):
        tokens = tokens[tokens[:, column].sort(stable=True).indices]
    return tokens


@pytest.mark.parametrize(
    ("strategy", "expected", "start_method"),
    [("auto", GANDDPStrategy, "popen"), ("ddp", GANDDPStrategy, "popen"), ("ddp_spawn", GANDDPStrategy, "spawn"),
     ("ddp_find_unused_parameters_true", DDPStrategy, "popen")],
)
def test_several_devices_get_the_gan_strategy(strategy, expected, start_method, tmp_path):
    args = [*TINY_DIGITS, "--trainer.accelerator=cpu",
            "--trainer.devices=2", f"--trainer.strategy={strategy}"]
    trainer = SaganCLI(args=args, run=False).trainer
    assert type(trainer.strategy) is expected and trainer.strategy._start_method == start_method
    assert StrategyRegistry["ddp"]["strategy"] is DDPStrategy  # the registry is Lightning's again


def test_one_device_keeps_the_single_device_strategy(tmp_path):
    trainer = SaganCLI(args=TINY_DIGITS, run=False).trainer
    assert isinstance(trainer.strategy, SingleDeviceStrategy)


def _setup_fit(model: ImageGAN, world_size: int, device: str = "cuda") -> None:
    model._trainer = SimpleNamespace(world_size=world_size)  # all that `setup` asks of the trainer
    model._device = torch.device(device, 0) if device == "cuda" else torch.device(device)  # as Lightning sets it
    model.setup("fit")


def test_sync_batchnorm_converts_only_the_generator_under_several_processes():
    model = ImageGAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), sync_batchnorm=True)
    before = {name: p for name, p in model.named_parameters()}
    _setup_fit(model, world_size=2)
    norms = [m for m in model.generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.generator_ema.modules())
    # the same parameter objects and names: optimizers and checkpoints are unaffected
    after = dict(model.named_parameters())
    assert after.keys() == before.keys() and all(p is before[name] for name, p in after.items())
    single = ImageGAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), sync_batchnorm=True)
    _setup_fit(single, world_size=1)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in single.modules())
    with pytest.raises(UsageError, match="needs GPUs"):
        _setup_fit(ImageGAN(tiny("generator-32"), tiny("discriminator-32"), sync_batchnorm=True), 2, device="cpu")


def test_lightnings_whole_module_ddp_is_refused_at_start_up():
    model = ImageGAN(tiny("generator-32"), tiny("discriminator-32"))
    model._trainer = SimpleNamespace(strategy=DDPStrategy(), world_size=2)
    with pytest.raises(UsageError, match="--trainer.strategy=ddp"):
        model.setup("fit")
    model._trainer = SimpleNamespace(strategy=DDPStrategy(find_unused_parameters=True), world_size=2)
    model.setup("fit")  # slower, but it works


def test_makefile_maps_devices_and_nodes():
    out = subprocess.run(
        ["make", "-n", "train", "DEVICES=4", "NODES=2"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "--trainer.devices=4 --trainer.num_nodes=2 --trainer.strategy=ddp" in out
    plain = subprocess.run(["make", "-n", "train"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "--trainer.devices" not in plain and "--trainer.strategy" not in plain
