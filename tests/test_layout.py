"""The package's shape: imports flow one way between its parts, so there are no circles."""

import ast
from pathlib import Path

from conftest import REPO

# part -> the parts of sagan it may import (every part may import sagan.errors)
ALLOWED = {
    "commands": {
        "cli", "tasks", "training", "evaluation", "losses", "models", "layers", "vocabulary", "visualization", "latent",
    },
    "cli": {"training", "evaluation"},
    "tasks": {"training", "evaluation", "losses", "layers", "models", "vocabulary", "visualization", "latent"},
    "training": {"visualization"},
    "evaluation": set(),
    "losses": {"layers"},
    "vocabulary": set(),
    "models": {"layers"},
    "layers": set(),
    "visualization": {"layers"},
    "latent": set(),
}


def _part(path: Path) -> str:
    return path.relative_to(REPO / "sagan").with_suffix("").parts[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        found |= {name.split(".")[1] for name in names if name.startswith("sagan.") and name.count(".") >= 1}
    return found


def test_imports_flow_one_way():
    wrong = []
    for path in sorted((REPO / "sagan").rglob("*.py")):
        part = _part(path)
        if part in ("__init__", "__main__", "errors"):
            continue
        for target in _imports(path) - {part, "errors"}:
            if target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(REPO)} imports sagan.{target}")
    assert not wrong, wrong


def test_models_and_layers_do_not_import_lightning():
    for folder in ("models", "layers"):
        for path in (REPO / "sagan" / folder).glob("*.py"):
            assert "lightning" not in path.read_text(), path
