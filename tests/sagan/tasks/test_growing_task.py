"""The image GAN's progressive growing (sagan/tasks/growing.py): the schedule in images seen, one compiled
graph per step and stage (the fade factor moves without recompiling), fresh optimizer state for the layers
a stage brings in, sample grids at the stage's resolution and metrics' samples at the full one."""

import lightning as L
import pytest
import torch
import torch._dynamo
from conftest import tiny
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from sagan.tasks.growing import GrowthSchedule
from sagan.tasks.image import ImageGAN

# 4 images a batch: batches 0-1 at 8x8; 2-3 at 16x16 (fade 0, 0.5); 4-6 at 32x32 (fade 0, 0.5, 1)
SCHEDULE = dict(stage_images=(8, 8), fade_images=8)


def _model(**kwargs) -> ImageGAN:
    generator = tiny("generator-32-cond", attn_resolutions=(16,), grow_from=8)
    discriminator = tiny("discriminator-32-cond", attn_resolutions=(16,), grow_from=8)
    return ImageGAN(generator, discriminator, growing=GrowthSchedule(**SCHEDULE), **kwargs)


def _train(batches: int, **kwargs) -> ImageGAN:
    torch.manual_seed(0)
    model = _model(**kwargs)
    data = TensorDataset(torch.rand(32, 1, 32, 32) * 2 - 1, torch.randint(0, 3, (32,)))
    trainer = L.Trainer(
        max_steps=2 * batches, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, deterministic=True,
    )
    trainer.fit(model, DataLoader(data, batch_size=4, drop_last=True))
    return model


def test_the_schedule_counts_stages_and_fades_in_images_seen():
    schedule = GrowthSchedule(**SCHEDULE)
    seen = [0, 4, 8, 12, 16, 20, 24, 1000]
    assert [schedule.at(n) for n in seen] == [
        (0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)
    ]
    with pytest.raises(ValueError, match="fade_images"):
        GrowthSchedule(stage_images=(8, 4), fade_images=8)
    with pytest.raises(ValueError, match="stage_images"):
        GrowthSchedule(stage_images=(0, 8), fade_images=4)


def test_networks_that_do_not_grow_alike_are_refused():
    with pytest.raises(ValueError, match="grow through 3 stages alike"):
        ImageGAN(tiny("generator-32-cond", grow_from=8), tiny("discriminator-32-cond"),
                 growing=GrowthSchedule(**SCHEDULE))
    with pytest.raises(ValueError, match="grow through 2 stages alike"):
        ImageGAN(tiny("generator-32-cond", attn_resolutions=(16,), grow_from=8),
                 tiny("discriminator-32-cond", attn_resolutions=(16,), grow_from=8),
                 growing=GrowthSchedule(stage_images=(8,), fade_images=8))


def test_a_compiled_network_compiles_once_per_stage_as_the_fade_moves():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch.manual_seed(0)
    generator = tiny("generator-32-cond", attn_resolutions=(16,), grow_from=8).eval()
    compiled = torch.compile(generator, fullgraph=True, backend="eager")
    z, y = torch.randn(2, 8), torch.tensor([0, 2])
    for res, fade in [(8, 1.0), (16, 0.0), (16, 0.5), (16, 1.0), (32, 0.0), (32, 0.7), (32, 1.0)]:
        generator.growth.set(res, fade)
        assert_close(compiled(z, y), generator(z, y), rtol=0, atol=0)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 3  # one graph per stage


@pytest.mark.slow  # ~40 s on 2 busy cores; the fast test above checks the same on the generator alone
def test_each_step_compiles_once_per_stage_and_trains_as_eager():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = _train(7, compile=True, compile_backend="eager")
    counters = torch._dynamo.utils.counters
    assert counters["stats"]["unique_graphs"] == 2 * 3  # a D-step and a G-step graph for each of 3 stages
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert (compiled.generator.growth.resolution, compiled.generator.growth.fade.item()) == (32, 1.0)
    eager = _train(7)
    for (name, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_new_stage_starts_its_layers_with_fresh_optimizer_state():
    model = _train(7)  # G and D step at every batch: 7 steps; stage 16 entered at batch 2, stage 32 at batch 4
    steps = {}
    for name, net in (("generator", model.generator), ("discriminator", model.discriminator)):
        state = model.optimizer(name).optimizer.state
        for res in (16, 32):
            steps[name, res] = {int(state[p]["step"]) for m in net.stage_modules(res) for p in m.parameters()}
        steps[name, 8] = {int(state[p]["step"]) for m in net.stage_modules(8) for p in m.parameters()}
    assert steps["generator", 8] == steps["discriminator", 8] == {7}
    assert steps["generator", 16] == steps["discriminator", 16] == {5}
    assert steps["generator", 32] == steps["discriminator", 32] == {3}


def test_samples_grid_at_the_stage_resolution_and_metrics_at_the_full_one():
    torch.manual_seed(0)
    model = _model(grid_size=4).eval()
    for net in (model.generator, model.generator_ema, model.discriminator):
        net.growth.set(16, 0.5)
    grid = model.fixed_samples()
    assert grid.shape == (4, 1, 16, 16)
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    full = model(z, y)
    assert full.shape == (4, 1, 32, 32)
    assert_close(full[:, :, ::2, ::2], model.generator_ema(z, y), rtol=0, atol=0)  # nearest-neighbour upsampled
