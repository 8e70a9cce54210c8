"""RepairDataModule: batches, fixed evaluation masks, resumable training draws, wrapping through the CLI."""

import lightning as L
import pytest
import torch
import yaml
from conftest import EXPERIMENTS
from datafixtures import make_celeba, make_class_folder
from jsonargparse import ArgumentParser
from torch.testing import assert_close

from datamodules.repair.degrade import Degradation
from datamodules.image.digits import DigitsDataModule
from datamodules.repair.masks import hole_ratio, seed_for
from datamodules.repair.damaged import DAMAGE_TAG, RepairDataModule
from datamodules.resumable import evaluation_loader, training_loader


def _repair(task: str = "inpaint", **kwargs) -> RepairDataModule:
    data = RepairDataModule(DigitsDataModule(batch_size=8, image_size=32, channels=1), task=task, **kwargs)
    data.setup("fit")
    return data


def test_inpainting_batches_hold_holes_of_zeros_and_the_clean_image():
    data = _repair()
    damaged, mask, clean, label = next(iter(data.train_dataloader()))
    assert damaged.shape == clean.shape == (8, 1, 32, 32) and mask.shape == (8, 1, 32, 32) and label.shape == (8,)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(damaged, clean * (1 - mask))
    assert torch.equal(damaged[mask.expand_as(damaged) == 0], clean[mask.expand_as(clean) == 0])  # bit-exact
    assert (damaged[mask.expand_as(damaged) == 1] == 0).all()
    assert (data.image_size, data.channels, data.num_classes) == (32, 1, 10)
    assert data.fingerprint == data.data.fingerprint and data.metric_features == data.data.metric_features
    assert data.train_set is data.data.train_set  # clean (image, label) pairs for the real statistics


def test_restoration_batches_carry_the_damage_map():
    data = _repair("restore", damage="salt_pepper")
    damaged, mask, clean, _ = data.val_repair[3]
    expected = Degradation("salt_pepper")(clean, torch.Generator().manual_seed(seed_for(0, 3, DAMAGE_TAG)))
    assert_close(damaged, expected[0], rtol=0, atol=0) and assert_close(mask, expected[1], rtol=0, atol=0)
    assert mask.any() and not torch.equal(damaged, clean)


def test_validation_masks_are_fixed_across_instances_and_ranks():
    a, b = _repair(), _repair(masks="boxes")  # the training recipe does not touch evaluation masks
    torch.manual_seed(7)
    masks = torch.stack([a.val_repair[i][1] for i in range(len(a.val_repair))])
    assert torch.equal(masks, torch.stack([b.val_repair[i][1] for i in range(len(b.val_repair))]))
    ratios = hole_ratio(masks)
    assert (ratios[0::2] <= 0.3).all() and (ratios[1::2] > 0.3).all()
    for rank in range(2):  # each rank's share holds the same items as one process
        loader = evaluation_loader(a.val_repair, batch_size=16, num_replicas=2, rank=rank)
        indices = list(loader.sampler)
        assert torch.equal(torch.cat([batch[1] for batch in loader]), masks[indices])
    assert not torch.equal(_repair(eval_seed=1).val_repair[0][1], masks[0])


def test_training_draws_follow_the_resumable_stream():
    data = _repair()
    dataset = data.train_repair

    def loader():
        return training_loader(dataset, batch_size=8, seed=3)

    full = loader()
    batches = [batch for batch, _ in zip(full, range(6))]
    resumed = loader()
    resumed.load_state_dict({"position": 4})
    assert all(torch.equal(x, y) for x, y in zip(next(iter(resumed)), batches[4]))
    assert not torch.equal(batches[0][1], batches[1][1])
    # the same image gets a new mask in the next data epoch
    first, second = dataset[(0, 5)], dataset[(1, 5)]
    assert torch.equal(first[2], second[2]) and not torch.equal(first[1], second[1])


def test_bad_arguments():
    digits = DigitsDataModule()
    with pytest.raises(ValueError, match="task"):
        RepairDataModule(digits, task="denoise")
    with pytest.raises(ValueError, match="kind"):
        RepairDataModule(digits, masks="circles")
    with pytest.raises(ValueError, match="preset"):
        RepairDataModule(digits, damage="sepia")
    with pytest.raises(ValueError, match="eval_seed"):
        RepairDataModule(digits, eval_seed=-1)


def _parse(data: dict, *args: str) -> RepairDataModule:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data", required=True)
    cfg = parser.parse_args(["--data", yaml.safe_dump(data), *args])
    return parser.instantiate_classes(cfg).data


@pytest.mark.parametrize("wrapped", ["celeba", "folder"])
def test_the_yaml_form_wraps_file_data_sets_and_reaches_their_root(wrapped, tmp_path):
    root = make_celeba(tmp_path / "celeba") if wrapped == "celeba" else make_class_folder(tmp_path / "folder")
    class_path = {"celeba": "datamodules.image.celeba.CelebADataModule", "folder": "datamodules.image.folder.ImageFolderDataModule"}
    config = {"class_path": "datamodules.repair.damaged.RepairDataModule", "init_args": {
        "data": {"class_path": class_path[wrapped], "init_args": {"image_size": 32, "batch_size": 2, "num_workers": 0}},
        "task": "restore",
    }}
    data = _parse(config, f"--data.init_args.data.init_args.root={root}")
    assert isinstance(data, RepairDataModule) and str(data.data.root) == str(root)
    data.setup("fit")
    damaged, mask, clean, _ = next(iter(data.val_dataloader()))
    assert damaged.shape[1:] == clean.shape[1:] == (3, 32, 32) and mask.shape[1:] == (1, 32, 32)


def test_the_cli_links_the_wrapped_facts_into_the_networks(tmp_path):
    from sagan.cli import SaganCLI

    data = {"class_path": "datamodules.repair.damaged.RepairDataModule", "init_args": {
        "data": {"class_path": "datamodules.image.digits.DigitsDataModule", "init_args": {"batch_size": 4}},
        "task": "inpaint", "masks": "strokes",
    }}
    cli = SaganCLI(args=[
        "--config", str(EXPERIMENTS / "sagan_digits.yaml"), "--data", yaml.safe_dump(data),
        "--data.init_args.data.init_args.channels=3", "--data.init_args.hole_range=[0.1, 0.2]",
        "--model.init_args.generator.init_args.width=2", "--model.init_args.discriminator.init_args.width=1",
        "--metrics.features=null",
    ], run=False)
    assert isinstance(cli.datamodule, RepairDataModule) and cli.datamodule.masks.hole_range == (0.1, 0.2)
    assert (cli.model.generator.channels, cli.model.generator.image_size, cli.model.generator.num_classes) == (3, 32, 10)
