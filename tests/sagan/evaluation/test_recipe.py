"""The recipe behind a score: every field moves the recipe, the weights hash is the file's, compare refuses."""

import dataclasses
import hashlib
import importlib.metadata
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datafixtures import make_class_folder

from datamodules.image.digits import DigitsDataModule
from datamodules.image.folder import ImageFolderDataModule
from sagan.commands import main
from sagan.evaluation import recipe as recipe_module
from sagan.evaluation.features import FeatureExtractor
from sagan.evaluation.recipe import (
    NOT_INSTALLED, Recipe, library_versions, make_recipe, real_set_fingerprint, record_recipe, tensor_fingerprint,
    weights_sha256,
)


class FileFeatures(FeatureExtractor):
    """An extractor whose weights are a file (as Inception's and I3D's `weights_path`)."""

    fingerprint = "file-features"

    def __init__(self, weights_path: Path):
        super().__init__()
        self.weights_path = weights_path


class OtherFileFeatures(FileFeatures):
    pass


@pytest.fixture
def weights(tmp_path) -> Path:
    path = tmp_path / "weights.pt"
    path.write_bytes(torch.randint(0, 256, (3000,), dtype=torch.uint8).numpy().tobytes())
    return path


def _base(weights: Path, **changes) -> Recipe:
    args = {"extractor": FileFeatures(weights), "data": DigitsDataModule(), "split": "train", "real_samples": 1618,
            "generated_samples": 500, "seed": 0, "truncation": None, "ema": True} | changes
    return make_recipe(**args)


def test_the_weights_hash_is_sha256_of_the_weights_file(weights):
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()  # independent of the module's chunked reading
    assert weights_sha256(FileFeatures(weights)) == expected
    assert _base(weights).features_sha256 == expected
    assert weights_sha256(None) == "none"


def test_library_versions_say_not_installed_where_missing(monkeypatch):
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "torch-fidelity":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    versions = library_versions()
    assert versions["torch_fidelity"] == NOT_INSTALLED and versions["torch"] == real("torch")


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("features", lambda w, tmp: {"extractor": OtherFileFeatures(w)}),
        ("features_sha256", lambda w, tmp: {"extractor": FileFeatures(_copy_changed(w, tmp))}),
        ("real_set", lambda w, tmp: {"data": DigitsDataModule(val_fraction=0.2)}),
        ("split", lambda w, tmp: {"split": "val"}),
        ("real_samples", lambda w, tmp: {"real_samples": 1000}),
        ("generated_samples", lambda w, tmp: {"generated_samples": 50_000}),
        ("seed", lambda w, tmp: {"seed": 1}),
        ("truncation", lambda w, tmp: {"truncation": 0.7}),
        ("ema", lambda w, tmp: {"ema": False}),
    ],
)
def test_each_field_changes_the_recipe_and_is_named_first(weights, tmp_path, field, change):
    base = _base(weights)
    changed = _base(weights, **change(weights, tmp_path))
    assert changed != base
    differing = [f.name for f in dataclasses.fields(Recipe) if getattr(base, f.name) != getattr(changed, f.name)]
    assert differing == ([field, "real_set"] if field == "split" else [field])  # another split: another real set
    assert base.first_difference(changed) == field
    assert base.first_difference(_base(weights)) is None  # the same inputs: the same recipe


@pytest.mark.parametrize("package", ["torch", "torchmetrics", "torch-fidelity"])
def test_a_library_version_changes_the_recipe(weights, monkeypatch, package):
    base = _base(weights)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1" if name == package else real(name))
    changed = _base(weights)
    assert base.first_difference(changed) == package.replace("-", "_")


def _copy_changed(weights: Path, tmp_path: Path) -> Path:
    other = tmp_path / "other.pt"
    data = bytearray(weights.read_bytes())
    data[0] ^= 1
    other.write_bytes(bytes(data))
    return other


def test_a_folder_fingerprint_is_its_files_not_where_they_lie(tmp_path):
    make_class_folder(tmp_path / "a")
    make_class_folder(tmp_path / "b")
    a, b = ImageFolderDataModule(str(tmp_path / "a")), ImageFolderDataModule(str(tmp_path / "b"))
    assert real_set_fingerprint(a) == real_set_fingerprint(b)  # the same files elsewhere
    assert real_set_fingerprint(a, "val") != real_set_fingerprint(a, "train")
    extra = next((tmp_path / "b").rglob("*.jpg"))
    extra.with_name("extra.jpg").write_bytes(extra.read_bytes())
    assert real_set_fingerprint(ImageFolderDataModule(str(tmp_path / "b"))) != real_set_fingerprint(a)


def test_tensor_fingerprint_follows_the_values():
    tokens = torch.arange(12).reshape(3, 4)
    assert tensor_fingerprint(tokens) == tensor_fingerprint(tokens.clone())
    changed = tokens.clone()
    changed[2, 3] = 0
    assert tensor_fingerprint(changed) != tensor_fingerprint(tokens)


def _write(path: Path, recipe: Recipe, fid: float) -> str:
    path.write_text(json.dumps({"metrics": {"fid": fid}, "recipe": recipe.to_dict()}))
    return str(path)


def test_compare_accepts_matching_recipes_and_prints_both(weights, tmp_path, capsys):
    a = _write(tmp_path / "a.json", _base(weights), 12.5)
    b = _write(tmp_path / "b.json", _base(weights), 11.0)
    main(["eval", "--compare", a, b])  # returns: exit status 0
    out = capsys.readouterr().out
    assert "comparable: the recipes match" in out
    fid_row = next(line for line in out.splitlines() if line.startswith("fid "))
    assert fid_row.split() == ["fid", "12.5", "11.0"]


def test_compare_refuses_differing_recipes_in_one_line(weights, tmp_path, capsys):
    a = _write(tmp_path / "a.json", _base(weights), 12.5)
    b = _write(tmp_path / "b.json", _base(weights, generated_samples=50_000, seed=3), 11.0)
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--compare", a, b])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sagan: error")]
    assert exit_info.value.code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "recipes differ in generated_samples (500 in" in lines[0]  # the first differing field


def test_compare_refuses_a_file_without_a_recipe(weights, tmp_path, capsys):
    a = _write(tmp_path / "a.json", _base(weights), 12.5)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"fid": 1.0}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--compare", a, str(old)])
    assert exit_info.value.code == 2 and "carries no recipe" in capsys.readouterr().err


def test_the_digest_of_a_file_is_computed_once_per_version(weights, monkeypatch):
    first = recipe_module.file_sha256(weights)
    monkeypatch.setattr(recipe_module.hashlib, "sha256", None)  # a second hash would fail
    assert recipe_module.file_sha256(weights) == first


def test_a_recipe_is_recorded_beside_the_csv_and_in_the_wandb_config(weights, tmp_path):
    from lightning.pytorch.loggers import WandbLogger

    from sagan.training.tracking import CSVTracker

    wandb = WandbLogger(save_dir=str(tmp_path), offline=True, project="recipe-test")
    trainer = SimpleNamespace(global_rank=0, loggers=[CSVTracker(str(tmp_path)), wandb])
    recipe = _base(weights)
    try:
        record_recipe(trainer, "val_recipe", recipe)
        assert json.loads((tmp_path / "val_recipe.json").read_text()) == recipe.to_dict()
        assert dict(wandb.experiment.config["val_recipe"]) == recipe.to_dict()  # a config entry, not a curve
    finally:
        wandb.experiment.finish()
    record_recipe(SimpleNamespace(global_rank=1, loggers=[CSVTracker(str(tmp_path / "other"))]), "val_recipe", recipe)
    assert not (tmp_path / "other" / "val_recipe.json").exists()  # rank 0 writes it


def test_compare_names_what_a_partial_recipe_lacks(weights, tmp_path, capsys):
    a = _write(tmp_path / "a.json", _base(weights), 12.5)
    partial = _base(weights).to_dict()
    del partial["seed"]
    (tmp_path / "b.json").write_text(json.dumps({"metrics": {"fid": 1.0}, "recipe": partial}))
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--compare", a, str(tmp_path / "b.json")])
    assert exit_info.value.code == 2 and "recipe is no recipe: it lacks seed" in capsys.readouterr().err
