"""The samples callback: image grids, text tables, and tasks that write their own kind of samples."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sagan.errors import UsageError
from sagan.training.sample_grid import SampleGrid
from sagan.visualization.render import FONT, LINE


class _Module:
    def __init__(self, samples, num_classes=0):
        self.generator_steps = 7
        self.num_classes = num_classes
        self._samples = samples

    def fixed_samples(self):
        return self._samples


class _ImageLogger:
    def __init__(self):
        self.calls = []

    def log_image(self, key, images, caption):
        self.calls.append((key, caption[0]))


def _trainer(tmp_path):
    return SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[], log_dir=None)


def test_image_samples_become_a_grid_one_class_per_column(tmp_path):
    callback = SampleGrid()
    callback._draw(_trainer(tmp_path), _Module(torch.zeros(6, 1, 8, 8), num_classes=3))
    grid = Image.open(tmp_path / "samples" / "grid_000007.png")
    # 3 columns, 2 rows of 8 px images with 2 px padding, under a line naming each column's class
    assert grid.size == (3 * 10 + 2, LINE + 2 * 10 + 2)
    assert np.asarray(grid.crop((0, 0, grid.width, LINE))).std() > 0  # something is written there


def test_long_class_names_are_written_upwards_and_the_caption_names_the_iteration(tmp_path):
    module = _Module(torch.zeros(4, 3, 8, 8), num_classes=2)
    module.class_names = ["airplane", "automobile"]
    logger = _ImageLogger()
    trainer = _trainer(tmp_path)
    trainer.loggers = [logger]
    SampleGrid()._draw(trainer, module)
    grid = Image.open(tmp_path / "samples" / "grid_000007.png")
    assert grid.size[0] == 2 * 10 + 2 and grid.size[1] > FONT.getlength("automobile") + 2 * 10 + 2
    assert logger.calls == [("samples/grid", "generator iteration 7")]


def test_attention_panels_are_written_and_logged_when_asked(tmp_path):
    module = _Module(torch.zeros(1, 1, 8, 8))
    module.attention_panels = lambda: {"generator.attention.0": Image.new("RGB", (5, 4))}
    logger = _ImageLogger()
    trainer = _trainer(tmp_path)
    trainer.loggers = [logger]
    SampleGrid(attention=True)._draw(trainer, module)
    assert Image.open(tmp_path / "samples" / "attention_000007" / "generator.attention.0.png").size == (5, 4)
    assert ("attention/generator.attention.0", "generator iteration 7") in logger.calls
    SampleGrid()._draw(_trainer(tmp_path / "off"), module)  # off by default
    assert not list((tmp_path / "off" / "samples").glob("attention_*"))
    with pytest.raises(UsageError, match="attention"):
        SampleGrid(attention=True).setup(trainer, _Module(torch.zeros(1, 1, 8, 8)), "fit")


def test_sentences_become_a_text_file(tmp_path):
    SampleGrid()._draw(_trainer(tmp_path), _Module(["a b", "c"]))
    assert (tmp_path / "samples" / "text_000007.txt").read_text() == "a b\nc\n"


def test_a_task_with_its_own_samples_writes_them(tmp_path):
    calls = []
    module = _Module(None)
    module.write_samples = lambda directory, step, loggers: calls.append((directory, step, loggers))
    SampleGrid()._draw(_trainer(tmp_path), module)
    assert calls == [(tmp_path / "samples", 7, [])]
    assert list((tmp_path / "samples").iterdir()) == []
