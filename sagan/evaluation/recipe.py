"""The recipe behind a score: everything two FID / IS / KID / PSNR / BLEU numbers must share to be compared.

Every score the project writes carries one (`Recipe.to_dict()`): validation (`val_recipe.json` beside
`metrics.csv`, the W&B run's config entry `val_recipe`), `sagan eval`'s JSON (`"recipe"`) and the quality
benchmarks' JSON (`"score_recipe"`). `sagan eval --compare A.json B.json` puts two side by side and refuses to call them
comparable, naming the first field in which their recipes differ.

Fields, in the order they are compared:

- `features`: the feature extractor's class path ("none" for scores without one: PSNR, BLEU);
- `features_sha256`: SHA-256 of its weights file ("none" without a file);
- `split`: the split the real side comes from ("train" for the real statistics of FID / KID, "val" for
  repairs of the held-out images, "val"/"test" for BLEU's references);
- `real_set`: the first 16 hex digits of SHA-256 over what the real side is: the split, the data module's
  description of its images (data set, split, transform, resolution, channels) with its root folder written
  `<root>` so that the same files elsewhere match, and, for image folders, the split's file list (relative
  paths and classes); for BLEU, the reference sentences' token ids themselves;
- `real_samples`, `generated_samples`: images (clips, sentences) on each side;
- `seed`: the seed of the generated noise and of the metrics' random subsets;
- `truncation`: the truncation threshold of the noise (None: none);
- `ema`: scored with the EMA generator (True) or the trained one;
- `torch`, `torchmetrics`, `torch_fidelity`: the installed versions ("not installed" where missing).
"""

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sagan.errors import UsageError

NONE = "none"
NOT_INSTALLED = "not installed"
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256: a large file is hashed once


@dataclass(frozen=True)
class Recipe:
    """What a score was measured with (see the module docstring for each field)."""

    features: str
    features_sha256: str
    split: str
    real_set: str
    real_samples: int
    generated_samples: int
    seed: int
    truncation: float | None
    ema: bool
    torch: str
    torchmetrics: str
    torch_fidelity: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str = "the recipe") -> "Recipe":
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in values] if isinstance(values, dict) else names
        if missing:
            raise UsageError(f"{where} is no recipe: it lacks {', '.join(missing)}")
        return cls(**{n: values[n] for n in names})

    def first_difference(self, other: "Recipe") -> str | None:
        """The first field (in the documented order) whose values differ, or None when the recipes match."""
        for f in fields(self):
            if getattr(self, f.name) != getattr(other, f.name):
                return f.name
        return None


def library_versions() -> dict[str, str]:
    """The installed versions of torch, torchmetrics and torch-fidelity ("not installed" where missing)."""
    versions = {}
    for field, package in (("torch", "torch"), ("torchmetrics", "torchmetrics"), ("torch_fidelity", "torch-fidelity")):
        try:
            versions[field] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[field] = NOT_INSTALLED
    return versions


def file_sha256(path: str | Path) -> str:
    """The full SHA-256 (hex) of a file, computed once per (path, size, modification time) in a process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def extractor_name(extractor) -> str:
    """The class path of a feature extractor, "none" for None."""
    return NONE if extractor is None else f"{type(extractor).__module__}.{type(extractor).__qualname__}"


def weights_sha256(extractor) -> str:
    """SHA-256 of the extractor's weights file: Inception's and I3D's `weights_path`, a cached classifier's
    `path` (loaded first, so that a classifier trained on first use has its file); "none" without one."""
    if extractor is None:
        return NONE
    path = getattr(extractor, "weights_path", None)
    if path is None and getattr(extractor, "path", None) is not None:
        extractor.load()
        path = extractor.path
    return file_sha256(path) if path is not None and Path(path).is_file() else NONE


def real_set_fingerprint(data, split: str = "train") -> str:
    """16 hex digits of SHA-256 over the real side of `split`: the data module's fingerprint with its root
    folder written `<root>`, and for image folders (`split_files`) the split's relative paths and classes
    (streamed into the hash: ImageNet's 1.28M paths are never one string)."""
    inner = getattr(data, "data", None)  # a wrapping data module (repair's) describes its images by the inner one
    data = inner if hasattr(inner, "fingerprint") else data
    description = str(getattr(data, "fingerprint", type(data).__qualname__))
    root = getattr(data, "root", None)
    digest = hashlib.sha256()
    if root is not None:
        description = description.replace(str(Path(root).resolve()), "<root>").replace(str(root), "<root>")
    digest.update(f"{split}\n{description}\n".encode())
    split_files = getattr(data, "split_files", None)
    if root is not None and callable(split_files):
        splits = getattr(data, "splits", ("train", "valid"))  # the data module's names of train and val
        paths, labels = split_files({"train": splits[0], "val": splits[1]}.get(split, split))
        prefix = str(root).rstrip("/") + "/"
        for i, path in enumerate(paths):
            digest.update(f"{str(path).removeprefix(prefix)}\t{None if labels is None else labels[i]}\n".encode())
    return digest.hexdigest()[:16]


def make_recipe(
    extractor, data, split: str, real_samples: int, generated_samples: int, seed: int,
    truncation: float | None = None, ema: bool = True, real_set: str | None = None,
) -> Recipe:
    """The recipe of a score measured in `extractor`'s space (None: no extractor) against `data`'s `split`;
    `real_set` replaces the data module's fingerprint (e.g. a hash of the very references a BLEU used)."""
    return Recipe(
        features=extractor_name(extractor), features_sha256=weights_sha256(extractor),
        real_set=real_set or real_set_fingerprint(data, split), split=split, real_samples=int(real_samples),
        generated_samples=int(generated_samples), seed=int(seed),
        truncation=None if truncation is None else float(truncation), ema=bool(ema), **library_versions(),
    )


def tensor_fingerprint(tensor) -> str:
    """16 hex digits of SHA-256 over a tensor's shape, dtype and values (e.g. the token ids of BLEU's references)."""
    array = tensor.detach().cpu().contiguous().numpy()
    digest = hashlib.sha256(f"{array.dtype}{list(array.shape)}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def record_recipe(trainer, name: str, recipe: Recipe) -> None:
    """Puts a recipe beside a run's logged numbers, once (rank 0): `<log dir>/<name>.json` for a CSV logger
    (beside `metrics.csv`), the config entry `<name>` for a W&B logger."""
    if getattr(trainer, "global_rank", 0) != 0:
        return
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    for logger in getattr(trainer, "loggers", []):
        if isinstance(logger, WandbLogger):
            logger.experiment.config.update({name: recipe.to_dict()}, allow_val_change=True)
        elif isinstance(logger, CSVLogger):
            folder = Path(logger.log_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.json").write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")


def read_scores(path: str | Path) -> dict:
    """A score file (`sagan eval`'s JSON, or one record of a benchmark's JSON) with its `recipe`."""
    path = Path(path)
    try:
        scores = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path} as JSON ({' '.join(str(error).split())})") from error
    if not isinstance(scores, dict) or "recipe" not in scores:
        raise UsageError(f"{path} carries no recipe (written by an older `sagan eval`?): score it again")
    return scores


def compare_lines(a: dict, b: dict, names: tuple[str, str]) -> list[str]:
    """Two scores side by side: their recipes, then their metrics, one row per field."""
    rows = [("", *names)]
    ra, rb = a["recipe"], b["recipe"]
    rows += [(f"recipe.{k}", ra.get(k), rb.get(k)) for k in dict.fromkeys([*ra, *rb])]
    ma, mb = a.get("metrics", {}), b.get("metrics", {})
    rows += [(k, ma.get(k, "-"), mb.get(k, "-")) for k in dict.fromkeys([*ma, *mb])]
    text = [[v if isinstance(v, str) else json.dumps(v) for v in row] for row in rows]  # None: null
    widths = [max(len(row[i]) for row in text) for i in range(3)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in text]


def check_comparable(a: dict, b: dict, names: tuple[str, str]) -> None:
    """Raises `UsageError` (one line) naming the first field in which the two recipes differ."""
    ra = Recipe.from_dict(a["recipe"], f"{names[0]}'s recipe")
    rb = Recipe.from_dict(b["recipe"], f"{names[1]}'s recipe")
    field = ra.first_difference(rb)
    if field is not None:
        raise UsageError(
            f"not comparable: the recipes differ in {field} ({getattr(ra, field)!r} in {names[0]}, "
            f"{getattr(rb, field)!r} in {names[1]})"
        )
