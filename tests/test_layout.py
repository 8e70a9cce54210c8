"""The package's shape: imports flow one way between its parts, and no module of `sagan` or `datamodules`
imports itself back through others (function-local imports included), so there are no circles."""

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGES = ("sagan", "datamodules")
# part -> the parts of sagan it may import (every part may import sagan.errors)
ALLOWED = {
    "commands": {
        "cli", "tasks", "training", "evaluation", "evaluation.checkpoint", "losses", "models", "layers",
        "vocabulary", "visualization", "latent",
    },
    "benchmarks": {
        "cli", "tasks", "training", "evaluation", "evaluation.checkpoint", "losses", "models", "layers", "latent",
        "visualization",
    },
    "cli": {"training", "evaluation"},
    # scoring a checkpoint dispatches on its task's type: a layer above the tasks
    "evaluation.checkpoint": {"tasks", "training", "evaluation", "latent"},
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
OWN_LAYER = {"sagan.evaluation.checkpoint": "evaluation.checkpoint"}  # modules that sit apart from their folder


def _modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the packages that `name` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` folders up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a function or class: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_circle_through_a_function_local_import(tmp_path):
    package = tmp_path / "sagan" / "evaluation"
    package.mkdir(parents=True)
    (tmp_path / "datamodules").mkdir()
    (tmp_path / "sagan" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "metrics.py").write_text("from sagan.evaluation.intra_class import intra_class_fid\n")
    (package / "intra_class.py").write_text("def intra_class_fid():\n    from sagan.evaluation import metrics\n")
    (package / "features.py").write_text("from . import metrics\n")
    graph = import_graph(tmp_path)
    assert graph["sagan.evaluation.features"] == {"sagan.evaluation.metrics"}
    assert cycles(graph) == [["sagan.evaluation.intra_class", "sagan.evaluation.metrics"]]


def _part(name: str) -> str:
    return OWN_LAYER.get(name) or name.split(".")[1]


def test_imports_flow_one_way():
    wrong = []
    for name, targets in import_graph().items():
        if not name.startswith("sagan.") or _part(name) in ("__main__", "errors"):
            continue
        part = _part(name)
        for target in targets:
            if not target.startswith("sagan.") or target == "sagan" or _part(target) in (part, "errors"):
                continue
            if _part(target) not in ALLOWED[part]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


@pytest.mark.parametrize("folder", ["models", "layers"])
def test_models_and_layers_do_not_import_lightning(folder):
    for path in (REPO / "sagan" / folder).glob("*.py"):
        assert "lightning" not in path.read_text(), path
