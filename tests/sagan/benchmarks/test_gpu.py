"""What only a GPU shows (`pytest -m gpu`, skipped elsewhere): fused attention kernels are chosen in the
forward and backward passes, the penalty's double backward runs on the math kernel, bf16 training, and
the compiled step with CUDA graphs."""

import lightning as L
import pytest
import torch
from conftest import tiny
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader, TensorDataset

from sagan.layers.attention import SAGANSelfAttention2d, SelfAttention2d
from sagan.layers.transformer import MultiHeadAttention
from sagan.losses import R1Penalty
from sagan.tasks.image import ImageGAN

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
FUSED = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


@pytest.mark.parametrize(
    "layer",
    [lambda: SAGANSelfAttention2d(64), lambda: SelfAttention2d(64), lambda: MultiHeadAttention(64, 4),
     lambda: MultiHeadAttention(64, 4, "l2"), lambda: MultiHeadAttention(64, 4, rel_pos=16)],
    ids=["sagan_official", "sagan_compact", "dot", "l2", "dot_relative_positions"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_runs_on_fused_kernels_forward_and_backward(layer, dtype):
    net = layer().cuda()
    x = torch.randn(4, 64, 32, 32, device="cuda") if isinstance(net, SelfAttention2d) else torch.randn(4, 256, 64, device="cuda")
    x.requires_grad_(True)
    with sdpa_kernel(FUSED), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out = net(x)  # raises if no fused kernel takes these shapes: the math kernel is not allowed here
        out.float().square().mean().backward()
    assert torch.isfinite(x.grad).all()


def test_the_penalty_pass_switches_to_the_math_kernel():
    d = tiny("discriminator-32").cuda()
    real = torch.rand(4, 3, 32, 32, device="cuda") * 2 - 1
    with sdpa_kernel(FUSED):  # the penalty's own math_attention() overrides this for its pass
        penalty = R1Penalty(10.0)(lambda x, y: d(x, y), real, real, None)
        penalty.backward()
    assert torch.isfinite(penalty)


@pytest.mark.parametrize("compile_mode", [None, "reduce-overhead"], ids=["eager", "cudagraphs"])
def test_bf16_training_step_and_compiled_step_with_cuda_graphs(compile_mode):
    torch.manual_seed(0)
    model = ImageGAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), compile=compile_mode is not None,
                     compile_mode=compile_mode)
    before = [p.detach().clone() for p in model.generator.parameters()]
    data = TensorDataset(torch.rand(64, 1, 32, 32) * 2 - 1, torch.randint(0, 3, (64,)))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True):
        L.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=12, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0).fit(
            model, DataLoader(data, batch_size=8, drop_last=True))
    moved = [not torch.equal(a, b.cpu()) for a, b in zip(before, model.generator.parameters())]
    assert any(moved) and all(torch.isfinite(p).all() for p in model.parameters())
    if compile_mode:
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2
