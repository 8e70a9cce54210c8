"""Reading `sagan fit` checkpoints back: the module rebuilt from the config saved in it, weights-only.

Checkpoints and run configs name classes by import path. Paths written before the package was grouped
into `tasks/`, `training/`, `evaluation/` and `commands/` (e.g. `sagan.module.GAN`) are rewritten to
their current place on reading (`upgrade_config`), so older checkpoints and `config.yaml` files keep
working; a class path that names nothing importable is refused in one line.
"""

import importlib
import io
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch

from sagan.errors import UsageError

# module -> its current module, for every module that moved when the package was reorganized
MOVED_MODULES = {
    "sagan.module": "sagan.tasks.image",
    "sagan.text_module": "sagan.tasks.text",
    "sagan.distributed": "sagan.training.distributed",
    "sagan.resume": "sagan.training.resume",
    "sagan.nonfinite": "sagan.training.nonfinite",
    "sagan.callbacks": "sagan.training.sample_grid",
    "sagan.metrics": "sagan.evaluation.metrics",
    "sagan.features": "sagan.evaluation.features",
    "sagan.text_metrics": "sagan.evaluation.text_metrics",
    "sagan.augment": "sagan.layers.augment",
}
# class path (after the module moved) -> its current name
RENAMED_CLASSES = {"sagan.tasks.image.GAN": "sagan.tasks.image.ImageGAN"}


def upgrade_class_path(path: str) -> str:
    """The current import path of a class path written by an earlier version (unchanged if it did not move)."""
    module, _, name = path.rpartition(".")
    if module in MOVED_MODULES:
        path = f"{MOVED_MODULES[module]}.{name}"
    return RENAMED_CLASSES.get(path, path)


def renamed_in(text: str) -> list[tuple[str, str]]:
    """(old, new) for every moved class path mentioned in `text` (for error messages)."""
    found = []
    for module in MOVED_MODULES:
        start = text.find(module + ".")
        while start >= 0:
            end = start + len(module) + 1
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            old = text[start:end]
            if (old, upgrade_class_path(old)) not in found:
                found.append((old, upgrade_class_path(old)))
            start = text.find(module + ".", end)
    return found


def upgrade_config(value: Any) -> Any:
    """`value` (a config or hyper-parameter tree of dicts, lists and strings) with every class path of an
    earlier version rewritten to its current place."""
    if isinstance(value, dict):
        return {key: upgrade_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [upgrade_config(item) for item in value]
    if isinstance(value, str) and value.startswith("sagan."):
        return upgrade_class_path(value)
    return value


def _check_importable(path: str) -> None:
    module, _, name = path.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"it names the class {path}, which this version of sagan does not have") from error


def load_module(ckpt: str | Path, map_location: str = "cpu", kind: type[L.LightningModule] = L.LightningModule):
    """Rebuilds the module of a `sagan fit` checkpoint from its saved config (weights-only unpickling), as the
    class the checkpoint names; `kind` refuses any other than that class and its subclasses.

    Raises:
        UsageError: (one line) a missing file, a file that is no `sagan fit` checkpoint, a class the
            checkpoint names that does not exist, or weights that do not fit the rebuilt networks.
    """
    path = Path(ckpt)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path} (expected a .ckpt file written by `sagan fit`)")
    what = "sagan" if kind is L.LightningModule else f"sagan {kind.__name__}"
    try:
        if not zipfile.is_zipfile(path):  # what torch.save writes
            raise ValueError("it is not a PyTorch checkpoint file")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # a look, no copy
        hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
        if not isinstance(hparams, dict) or "_class_path" not in hparams:
            raise ValueError("it names no module class (expected a checkpoint written by `sagan fit`)")
        upgraded = upgrade_config(hparams)
        _check_importable(upgraded["_class_path"])
        source: Path | io.BytesIO = path
        if upgraded != hparams:  # written by an earlier version: load the upgraded copy
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            checkpoint["hyper_parameters"] = upgraded
            source = io.BytesIO()
            torch.save(checkpoint, source)
            source.seek(0)
        return kind.load_from_checkpoint(source, map_location=map_location, weights_only=True).eval()
    except Exception as error:  # anything from unpickling to a config the classes reject
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot load {path} as a {what} checkpoint: {reason}") from error


def data_facts(datamodule) -> dict:
    """What a checkpoint keeps of its data: class names (index order) and the training images'
    fingerprint (`sagan export` writes them on the model card; sample grids label their columns)."""
    if datamodule is None:
        return {}
    names = getattr(datamodule, "class_names", None)
    return {
        "class_names": [str(name) for name in names] if names is not None else None,
        "fingerprint": getattr(datamodule, "fingerprint", None),
        "data": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}",
    }
