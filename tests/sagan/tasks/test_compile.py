"""The image GAN's training step as two graphs: with `compile` on, the D step and the G step compile once
each (fullgraph: no graph break, so no host synchronization inside) and never recompile, and they train
exactly as the eager step does. A cheap backend ("eager": Dynamo's capture, no code generation) keeps the
test fast; the graphs it captures are the ones inductor would compile."""

import lightning as L
import pytest
import torch
import torch._dynamo
from conftest import tiny
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from sagan.losses import R1Penalty, RelativisticLoss
from sagan.tasks.image import ImageGAN


def _train(compile: bool, steps: int, **kwargs) -> ImageGAN:
    torch.manual_seed(0)
    model = ImageGAN(tiny("generator-32-cond"), tiny("discriminator-32-cond"), compile=compile,
                     compile_backend="eager", **kwargs)
    data = TensorDataset(torch.rand(32, 1, 32, 32) * 2 - 1, torch.randint(0, 3, (32,)))
    trainer = L.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, deterministic=True,
    )
    trainer.fit(model, DataLoader(data, batch_size=4, drop_last=True))
    return model


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_critic=2, penalty=R1Penalty(1.0), mode_seeking=0.5),  # as sagan_digits: the G graph holds the term
        pytest.param(dict(loss=RelativisticLoss()), marks=pytest.mark.slow),  # G's loss reads D on real images too
    ],
    ids=["hinge-r1-ncritic2-modeseeking", "rsgan"],
)
def test_each_step_compiles_once_without_breaks_and_trains_as_eager(kwargs):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = _train(True, 6, **kwargs)
    counters = torch._dynamo.utils.counters
    assert counters["stats"]["unique_graphs"] == 2  # one D-step graph, one G-step graph
    assert not counters["graph_break"], dict(counters["graph_break"])
    eager = _train(False, 6, **kwargs)
    for (name, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        assert_close(a, b, rtol=0, atol=0, msg=name)


def test_an_unknown_backend_is_refused_at_construction():
    with pytest.raises(ValueError, match="compile_backend"):
        ImageGAN(tiny("generator-32"), tiny("discriminator-32"), compile=True, compile_backend="nope")
