"""`sagan export`: the EMA generator of a checkpoint alone, loadable without this package, plus a JSON card.

    sagan export --ckpt runs/sagan_digits/<run>/checkpoints/last.ckpt [--format torchscript|exported|onnx]
                 [--out FILE or FOLDER]

The generator is rebuilt from the checkpoint's config with the EMA weights, in eval mode (batch norms
use their running statistics) and with every spectral norm folded into its weight, then written as
TorchScript (`torch.jit.load`), a `torch.export` program (`torch.export.load(...).module()`) or ONNX
(onnxruntime; needs the `export` extra). It maps noise z [N, z_dim] (standard normal; truncate it
yourself if you like) and, for conditional models, class indices y [N] (int64) to images
[N, C, H, W] in [-1, 1]; the batch size is free. The card beside it (same name, `.json`) says how to
load and call it and records the architecture and its config, z size, classes with their names, the
data's fingerprint, the checkpoint and generator iterations, and the metrics of every `sagan eval` of
that checkpoint found beside it. The command reloads what it wrote and checks it against the EMA
generator on fresh noise before it returns.
"""

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import warnings
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.nn.utils import parametrize

from sagan.errors import UsageError, describe_os_error, image_hw
from sagan.evaluation.checkpoint import build_data_and_metrics, load_gan
from sagan.tasks.image import ImageGAN
from sagan.training.checkpoints import data_facts, upgrade_config

FORMATS = {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}
LOADERS = {
    "torchscript": "torch.jit.load(file)",
    "exported": "torch.export.load(file).module()",
    "onnx": "onnxruntime.InferenceSession(file); run(None, {'z': z, 'y': y})",
}


class StandaloneGenerator(nn.Module):
    """`generator(z, y)` with the labels optional, the signature the exported program keeps.

    Args:
        generator: an image generator called as `generator(z, y)`.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # z: [N, z_dim], y: [N] int64 class indices (conditional models) -> [N, C, H, W] in [-1, 1]
        return self.generator(z, y)


def generator_spec(ckpt: Path) -> dict:
    """The generator's `class_path` and `init_args` as the checkpoint saved them."""
    hparams = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters") or {}
    spec = upgrade_config(hparams.get("generator"))
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise UsageError(f"{ckpt} names no generator class (expected a checkpoint written by `sagan fit`)")
    return spec


def standalone_generator(model: ImageGAN, spec: dict) -> StandaloneGenerator:
    """The EMA generator rebuilt from its config `spec` and the EMA weights, in eval mode, spectral norms
    folded into the weights (a fresh network: folding a copy would change the original's classes)."""
    module, _, name = spec["class_path"].rpartition(".")
    generator = getattr(importlib.import_module(module), name)(**spec.get("init_args", {}))
    generator.load_state_dict(model.generator_ema.state_dict())
    generator.eval().requires_grad_(False)
    for layer in [m for m in generator.modules() if parametrize.is_parametrized(m)]:
        for tensor in list(layer.parametrizations.keys()):
            parametrize.remove_parametrizations(layer, tensor, leave_parametrized=True)
    return StandaloneGenerator(generator).cpu().float()


def example_inputs(model: ImageGAN, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(z,) or (z, y) for `n` samples, seeded."""
    z = torch.randn(n, model.generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return (z, torch.arange(n) % model.num_classes) if model.num_classes else (z,)


def write_program(net: StandaloneGenerator, inputs: tuple[torch.Tensor, ...], fmt: str, path: Path) -> None:
    """Writes `net` in format `fmt` to `path`, the batch dimension left free."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    dynamic = {name: {0: batch} for name in ("z", "y")[: len(inputs)]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notes about code that exports fine
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, inputs, check_trace=False), str(path))
        elif fmt == "exported":
            torch.export.save(torch.export.export(net, inputs, dynamic_shapes=dynamic), str(path))
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
                torch.onnx.export(
                    net, inputs, str(path), input_names=["z", "y"][: len(inputs)], output_names=["images"],
                    dynamic_shapes=dynamic, dynamo=True, external_data=False,  # one file
                )


def run_program(path: Path, fmt: str, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """What the program at `path` outputs for `inputs`, loaded as a user would load it."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation note
            return torch.jit.load(str(path))(*inputs)
    if fmt == "exported":
        return torch.export.load(str(path)).module()(*inputs)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = dict(zip(["z", "y"], (x.numpy() for x in inputs)))
    return torch.from_numpy(session.run(None, feeds)[0])


def data_facts_of(model: ImageGAN, ckpt: Path) -> dict:
    """The data facts the checkpoint keeps; for a checkpoint older than them, those of the data module its
    run's `config.yaml` builds (empty when that fails)."""
    if model.data_facts:
        return model.data_facts
    config = ckpt.resolve().parent.parent / "config.yaml"
    try:
        data, _ = build_data_and_metrics(upgrade_config(yaml.safe_load(config.read_text())), {"features": None})
    except (OSError, UsageError, yaml.YAMLError):
        return {}
    return data_facts(data)


def card(model: ImageGAN, spec: dict, ckpt: Path, fmt: str, path: Path, check: float | None) -> dict:
    """The JSON card written beside the exported file."""
    generator = model.generator_ema
    channels, size = generator.channels, generator.image_size  # one side, or (height, width)
    height, width = image_hw(size)
    evaluations = [
        {"file": p.name, **json.loads(p.read_text())} for p in sorted(ckpt.parent.glob(f"{ckpt.stem}_eval*.json"))
    ]
    global_step = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0)
    inputs = {"z": {"shape": ["N", generator.z_dim], "dtype": "float32", "distribution": "standard normal"}}
    if model.num_classes:
        inputs["y"] = {"shape": ["N"], "dtype": "int64", "values": f"class indices 0..{model.num_classes - 1}"}
    return {
        "format": fmt,
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "load": LOADERS[fmt],
        "inputs": inputs,
        "output": {"shape": ["N", channels, height, width], "dtype": "float32", "range": [-1.0, 1.0]},
        "architecture": spec["class_path"],
        "config": spec.get("init_args", {}),
        "z_dim": generator.z_dim,
        "image_size": size if height == width else [height, width],
        "channels": channels,
        "classes": {"count": model.num_classes, "names": model.class_names},
        "data": {"module": model.data_facts.get("data"), "fingerprint": model.data_facts.get("fingerprint")},
        "checkpoint": str(ckpt),
        "generator_steps": global_step // (model.n_critic + 1),
        "metrics": evaluations,
        "check": {"max_abs_difference_to_ema_generator": check},
        "torch_version": torch.__version__,
    }


def export(ckpt: Path, fmt: str, out: Path | None = None) -> tuple[Path, Path, float]:
    """Writes the EMA generator of `ckpt` in format `fmt` and its card; returns their paths and the
    largest difference between the reloaded program's images and the EMA generator's on fresh noise."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        try:
            importlib.import_module("onnxscript")
            importlib.import_module("onnxruntime")
        except ImportError as error:
            raise UsageError(f"--format onnx needs {error.name}: pip install 'sagan[export]'") from error
    model = load_gan(ckpt, map_location="cpu")
    if type(model) is not ImageGAN:  # a speech or video GAN's generator makes sounds or clips, not images
        raise UsageError(
            f"{ckpt} is a {type(model).__name__} checkpoint: sagan export writes the image generator of an ImageGAN "
            "checkpoint (`sagan sample` draws from this one)"
        )
    model.data_facts = data_facts_of(model, ckpt)
    spec = generator_spec(ckpt)
    net = standalone_generator(model, spec)
    name = f"{ckpt.stem}_generator{FORMATS[fmt]}"
    path = ckpt.with_name(name) if out is None else out / name if out.is_dir() else out  # a folder: the file in it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {describe_os_error(error)}") from error
    write_program(net, example_inputs(model, 2), fmt, path)
    fresh = example_inputs(model, 3, seed=1)
    with torch.no_grad():
        check = (run_program(path, fmt, fresh) - model(*fresh)).abs().max().item()
    card_path = path.with_name(path.name + ".json")  # one card per exported file
    card_path.write_text(json.dumps(card(model, spec, ckpt, fmt, path, check), indent=2) + "\n")
    return path, card_path, check


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sagan export", description="The EMA generator alone (TorchScript, torch.export or ONNX) and a JSON card."
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint of an image GAN written by `sagan fit`")
    parser.add_argument("--format", default="torchscript", choices=tuple(FORMATS), help="default torchscript")
    parser.add_argument(
        "--out", default=None,
        help="file, or an existing folder to put it in (default <ckpt without .ckpt>_generator.pt|.pt2|.onnx)",
    )
    args = parser.parse_args(argv)
    path, card_path, check = export(Path(args.ckpt), args.format, Path(args.out) if args.out else None)
    print(f"wrote {path} and {card_path} (largest difference to the EMA generator: {check:.2e})")
