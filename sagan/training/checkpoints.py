"""Reading `sagan fit` checkpoints back: the module rebuilt from the config saved in it, weights-only.

Checkpoints and run configs name classes by import path. Paths written before the package was grouped
into `tasks/`, `training/`, `evaluation/` and `commands/` (e.g. `sagan.module.GAN`), or before the data
modules were grouped by modality (e.g. `datamodules.digits.DigitsDataModule`), are rewritten to their
current place on reading (`upgrade_config`), so older checkpoints and `config.yaml` files keep
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
    # datamodules/ grouped by modality
    "datamodules.image": "datamodules.image.base",
    "datamodules.imagefiles": "datamodules.image.files",
    "datamodules.digits": "datamodules.image.digits",
    "datamodules.stacked_digits": "datamodules.image.stacked_digits",
    "datamodules.celeba": "datamodules.image.celeba",
    "datamodules.cifar10": "datamodules.image.cifar10",
    "datamodules.imagenet": "datamodules.image.imagenet",
    "datamodules.folder": "datamodules.image.folder",
    "datamodules.moving_digits": "datamodules.video.moving_digits",
    "datamodules.videofolder": "datamodules.video.folder",
    "datamodules.audio": "datamodules.audio.base",
    "datamodules.audio_folder": "datamodules.audio.folder",
    "datamodules.spoken_digits": "datamodules.audio.spoken_digits",
    "datamodules.text": "datamodules.text.base",
    "datamodules.oracle": "datamodules.text.oracle",
    "datamodules.repair": "datamodules.repair.damaged",
}
# class path (after the module moved) -> its current name
RENAMED_CLASSES = {
    "sagan.tasks.image.GAN": "sagan.tasks.image.ImageGAN",
    "datamodules.text.base.TextDataModule": "datamodules.text.corpus.TextDataModule",
}


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
            # a class right after the old module (`datamodules.image.ImageDataModule`), not a module of the
            # package that took its name (`datamodules.image.digits`)
            if old[len(module) + 1 : len(module) + 2].isupper() and (old, upgrade_class_path(old)) not in found:
                found.append((old, upgrade_class_path(old)))
            start = text.find(module + ".", end)
    return found


# SAGAN networks saved before `attention` existed used the compact block; the default is now the paper's.
ATTENTION_BEFORE_OPTION = {
    "sagan.models.sagan.SAGANGenerator": "compact",
    "sagan.models.sagan.SAGANDiscriminator": "compact",
}


def upgrade_config(value: Any) -> Any:
    """`value` (a config or hyper-parameter tree of dicts, lists and strings) with every class path of an
    earlier version rewritten to its current place, and options added since then set to what those
    versions did (SAGAN's `attention`)."""
    if isinstance(value, dict):
        value = {key: upgrade_config(item) for key, item in value.items()}
        block = ATTENTION_BEFORE_OPTION.get(value.get("class_path"))
        if block and isinstance(value.get("init_args"), dict) and "attention" not in value["init_args"]:
            value["init_args"] = {**value["init_args"], "attention": block}
        return value
    if isinstance(value, list):
        return [upgrade_config(item) for item in value]
    if isinstance(value, str) and value.startswith(("sagan.", "datamodules.")):
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


def _first_difference(saved: Any, current: Any, prefix: str = "") -> str | None:
    """`name: saved -> current` for the first entry in which two hyper-parameter trees differ, or None."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current), key=str):
            if key.startswith("_"):
                continue
            found = _first_difference(saved.get(key), current.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
        saved, current = list(saved), list(current)
    return None if saved == current else f"{prefix.rstrip('.').replace('init_args.', '')}: {saved} in the checkpoint, {current} now"


def _hint(key: str, saved: dict, current: dict) -> str:
    """Which constructor argument of the network that owns state-dict `key` changed, if the configs say."""
    network = key.split(".")[0]
    for name in (network, network.removesuffix("_ema")):
        if isinstance(saved.get(name), dict) and isinstance(current.get(name), dict):
            found = _first_difference(saved[name], current[name], f"{name}.")
            if found:
                return f"; {found}"
    return ""


def check_resumable(path: Path, module: L.LightningModule, class_path: str) -> None:
    """Refuses, in one line and before anything is written, a checkpoint that `module` cannot continue
    from: one that does not load weights-only, holds another module class, or whose tensors do not fit the
    module this config builds (the first missing, unexpected or reshaped tensor is named). Before the tensors
    it runs the module's own `on_load_checkpoint` checks (a text GAN refuses another vocabulary), which
    Lightning runs again when it loads the checkpoint.

    Raises:
        UsageError: (one line) what does not fit.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # a look, no copy
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(
            f"cannot resume from {path}: it does not load with torch.load(weights_only=True) ({first})"
        ) from error
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UsageError(f"cannot resume from {path}: it holds no module state (expected a checkpoint written by `sagan fit`)")
    saved_hparams = checkpoint.get("hyper_parameters") or {}
    saved_class = saved_hparams.get("_class_path")
    if saved_class and upgrade_class_path(saved_class) != class_path:
        raise UsageError(
            f"cannot resume from {path}: it is a checkpoint of {upgrade_class_path(saved_class)}, and this config "
            f"trains {class_path}"
        )
    try:  # the task's own checks first: they say more (a text GAN names the vocabulary that differs)
        module.on_load_checkpoint(checkpoint)
    except UsageError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot resume from {path}: {first}") from error
    saved_hparams, current_hparams = upgrade_config(dict(saved_hparams)), dict(module.hparams)
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise UsageError(
                f"cannot resume from {path}: the checkpoint has no {key}, which this config's network has "
                f"(the architecture changed{_hint(key, saved_hparams, current_hparams)})"
            )
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UsageError(
                f"cannot resume from {path}: {key} is {list(state[key].shape)} in the checkpoint and "
                f"{list(tensor.shape)} in this config (the architecture changed{_hint(key, saved_hparams, current_hparams)})"
            )
    for key in state:
        if key not in expected:
            raise UsageError(
                f"cannot resume from {path}: the checkpoint has {key}, which this config's network does not "
                f"(the architecture changed{_hint(key, saved_hparams, current_hparams)})"
            )


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
