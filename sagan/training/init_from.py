"""`sagan fit --init_from CKPT`: a new run whose networks start from another run's weights (fine-tuning).

Only the networks come from the checkpoint: the generator, the discriminator and the generator's moving
average (`generator`, `discriminator`, `generator_ema`; the average is the checkpoint's generator when the
checkpoint kept none). Optimizers, step counters, random state and the module's other state start afresh,
as in any new run. The checkpoint must hold the task class this config trains, and every tensor must fit
the networks this config builds, with one exception: class embeddings (an `nn.Embedding` with one row per
class of the data: conditional batch norm, projection heads, class codes) whose number of rows is the old
data's number of classes are left as this config initialized them when the new data has another number
of classes, or, given `class_map` (`--init_classes`), take for each new class the rows of the old class it
names. Anything else that does not fit is refused in one line naming the first tensor that differs,
before anything is written.
"""

from pathlib import Path

import lightning as L
import torch
from torch import nn

from sagan.errors import UsageError
from sagan.training.checkpoints import _hint, check_checkpoint, upgrade_class_path, upgrade_config

#: the parts of a task's state dict that `--init_from` loads (the rest starts afresh)
NETWORKS = ("generator", "discriminator", "generator_ema")


def _class_embedding(module: L.LightningModule, key: str) -> nn.Embedding | None:
    """The class embedding that state-dict `key` belongs to (its own weight, or a spectral norm's
    `weight_orig`, `weight_u`, parametrization), or None for any other tensor."""
    network = getattr(module, key.split(".")[0], None)
    num_classes = getattr(network, "num_classes", 0)
    parts = key.split(".")[:-1]
    while len(parts) > 1:  # from the tensor's owner up to (not including) the network
        owner = module.get_submodule(".".join(parts))
        if isinstance(owner, nn.Embedding):
            return owner if num_classes and owner.num_embeddings == num_classes else None
        parts.pop()
    return None


def initial_state(
    path: Path, module: L.LightningModule, class_path: str, class_map: list[int] | None = None
) -> tuple[dict, str]:
    """The state dict that `module` (built by this config, class `class_path`) starts from when initialized
    from the checkpoint at `path`, and one line that says what was taken. `class_map[i]`: the checkpoint's
    class whose embedding rows new class i takes (None: new classes get this config's initialization).

    Raises:
        UsageError: (one line) a file that is no `sagan fit` checkpoint, another task class, a checkpoint
            the task refuses (a text GAN: another vocabulary), or the first tensor that does not fit.
    """
    check_checkpoint(path)  # a whole `sagan fit` checkpoint of classes this project builds, nothing imported
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise UsageError(f"cannot initialize from {path}: it holds no module state (expected a checkpoint of `sagan fit`)")
    saved_hparams = upgrade_config(dict(checkpoint.get("hyper_parameters") or {}))
    saved_class = upgrade_class_path(str(saved_hparams.get("_class_path")))
    if saved_class != class_path:
        raise UsageError(f"cannot initialize from {path}: it is a checkpoint of {saved_class}, and this config trains {class_path}")
    check_source = getattr(module, "check_init_source", None)
    if check_source is not None:
        try:
            check_source(checkpoint)
        except UsageError as error:
            raise UsageError(f"cannot initialize from {path}: {error}") from error
    if module.generator_ema is not None and not any(key.startswith("generator_ema.") for key in state):
        state = {**state, **{f"generator_ema.{k[len('generator.'):]}": v for k, v in state.items() if k.startswith("generator.")}}
    current_hparams = dict(module.hparams)
    expected = module.state_dict()
    ours = {key: tensor for key, tensor in expected.items() if key.split(".")[0] in NETWORKS}
    new, fresh, classes = dict(expected), [], None
    for key, tensor in ours.items():
        if key not in state:
            raise UsageError(
                f"cannot initialize from {path}: the checkpoint has no {key}, which this config's network has "
                f"(the architecture differs{_hint(key, saved_hparams, current_hparams)})"
            )
        saved = state[key]
        if tuple(saved.shape) != tuple(tensor.shape):
            embedding = _class_embedding(module, key)
            if embedding is not None and saved.dim() >= 1 and tuple(saved.shape[1:]) == tuple(tensor.shape[1:]):
                fresh.append(key)  # this config's own initialization stays, or the mapped rows
                classes = classes or (saved.shape[0], tensor.shape[0])
                if class_map is not None:
                    _check_class_map(path, class_map, saved.shape[0], tensor.shape[0])
                    new[key] = saved[torch.as_tensor(class_map)]
                continue
            raise UsageError(
                f"cannot initialize from {path}: {key} is {list(saved.shape)} in the checkpoint and "
                f"{list(tensor.shape)} in this config (the architecture differs{_hint(key, saved_hparams, current_hparams)})"
            )
        new[key] = saved
    for key in state:
        if key.split(".")[0] in (NETWORKS if module.generator_ema is not None else NETWORKS[:2]) and key not in expected:
            raise UsageError(
                f"cannot initialize from {path}: the checkpoint has {key}, which this config's network does not "
                f"(the architecture differs{_hint(key, saved_hparams, current_hparams)})"
            )
    taken = "generator, discriminator" + (" and EMA generator" if module.generator_ema is not None else "")
    line = f"initialized from {path}: {taken} weights ({len(ours) - len(fresh)} tensors)"
    if fresh:
        how = f"taken from classes {class_map} of the checkpoint" if class_map is not None else "re-initialized"
        line += (
            f"; class embeddings {how} ({classes[0]} classes in the checkpoint, {classes[1]} in this "
            f"data: {len(fresh)} tensors)"
        )
    elif class_map is not None:
        raise UsageError(f"cannot initialize from {path}: --init_classes maps classes, and the checkpoint has as many as this data")
    return new, line


def _check_class_map(path: Path, class_map: list[int], old: int, new: int) -> None:
    if len(class_map) != new or not all(0 <= c < old for c in class_map):
        raise UsageError(
            f"cannot initialize from {path}: --init_classes needs {new} classes of the checkpoint (one per class "
            f"of this data, each in [0, {old - 1}]), got {class_map}"
        )


def init_from(path: str | Path, module: L.LightningModule, class_path: str, class_map: list[int] | None = None) -> str:
    """Loads the networks of `module` from the checkpoint at `path` (see the module's docstring); returns
    the one line that says what was taken. Raises UsageError (one line) for what does not fit."""
    state, line = initial_state(Path(path), module, class_path, class_map)
    module.load_state_dict(state, strict=True)
    return line
