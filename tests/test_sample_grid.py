"""The samples callback: image grids, text tables, and tasks that write their own kind of samples."""

from types import SimpleNamespace

import torch
from PIL import Image

from sagan.training.sample_grid import SampleGrid


class _Module:
    def __init__(self, samples, num_classes=0):
        self.generator_steps = 7
        self.num_classes = num_classes
        self._samples = samples

    def fixed_samples(self):
        return self._samples


def _trainer(tmp_path):
    return SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[], log_dir=None)


def test_image_samples_become_a_grid_one_class_per_column(tmp_path):
    callback = SampleGrid()
    callback._draw(_trainer(tmp_path), _Module(torch.zeros(6, 1, 8, 8), num_classes=3))
    grid = Image.open(tmp_path / "samples" / "grid_000007.png")
    assert grid.size == (3 * 10 + 2, 2 * 10 + 2)  # 3 columns, 2 rows of 8 px images with 2 px padding


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
