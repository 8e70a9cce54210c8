"""Which classes a file may make `sagan` build: checked before anything is imported.

Checkpoints and run configs name classes by import path (`_class_path`, `class_path`), and rebuilding
them imports those modules. Importing a module runs its top-level code, so a checkpoint or a
`config.yaml` from elsewhere could otherwise run any installed module with side effects at import. Before
a command imports anything a file names, `check_class_paths` walks the file's tree and refuses, in one
line, a class outside what this project builds:

- classes of this project's own packages (`sagan.*`, `datamodules.*`);
- classes the user names on the command line (e.g. `sagan eval --features mypkg.MyFeatures`), which the
  command passes in as `allowed`, or in their own YAML given to `sagan fit`;
- classes and packages listed in the environment variable `SAGAN_TRUSTED_CLASSES` (comma-separated;
  `mypkg` trusts every class under `mypkg.`), for networks of the user's own package.

Lightning's instantiator entry (`_instantiator`) must be the one LightningCLI writes.
"""

import os
from collections.abc import Iterable, Iterator
from typing import Any

from sagan.errors import UsageError

PROJECT_PACKAGES = ("sagan", "datamodules")
TRUSTED_ENV = "SAGAN_TRUSTED_CLASSES"
INSTANTIATORS = ("lightning.pytorch.cli.instantiate_module",)
CLASS_KEYS = ("class_path", "_class_path")


def class_paths_in(tree: Any) -> Iterator[str]:
    """Every class path a config or hyper-parameter tree names (`class_path` / `_class_path` values)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in CLASS_KEYS:
                yield value if isinstance(value, str) else repr(value)
            else:
                yield from class_paths_in(value)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from class_paths_in(item)


def _instantiators_in(tree: Any) -> Iterator[Any]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "_instantiator":
                yield value
            else:
                yield from _instantiators_in(value)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _instantiators_in(item)


def _trusted(path: str, allowed: set[str]) -> bool:
    names = set(allowed) | {name.strip() for name in os.environ.get(TRUSTED_ENV, "").split(",") if name.strip()}
    packages = PROJECT_PACKAGES + tuple(names)
    return path in names or any(path.startswith(f"{package}.") for package in packages)


def check_class_paths(tree: Any, source: str, allowed: Iterable[str] = ()) -> None:
    """Refuses, in one line and without importing anything, a tree that names a class this project does not
    build (see the module's docstring).

    Args:
        tree: the config or hyper-parameter tree read from the file (dicts, lists, strings).
        source: what the tree was read from, for the message (e.g. "runs/x/checkpoints/last.ckpt").
        allowed: class paths the user named explicitly (command line, their own YAML).

    Raises:
        UsageError: (one line) the first class path that is not trusted, or an unknown instantiator.
    """
    allowed = set(allowed)
    for path in class_paths_in(tree):
        if not _trusted(path, allowed):
            raise UsageError(
                f"{source} names the class {path}, which is not part of sagan: refused before importing anything "
                f"(if you trust the file, name it in {TRUSTED_ENV}={path})"
            )
    for instantiator in _instantiators_in(tree):
        if instantiator not in INSTANTIATORS:
            raise UsageError(f"{source} names the instantiator {instantiator!r}, which sagan does not use: refused")
