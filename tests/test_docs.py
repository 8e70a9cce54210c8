"""Every `make` and `sagan` command in the README and docs/ runs as written: its make target and variables
exist, the experiment that MODEL / DATA pick exists, and every option it passes is one its verb has."""

import contextlib
import functools
import io
import re
import shlex
from pathlib import Path

import pytest
from conftest import EXPERIMENTS, REPO

from sagan.commands import LIGHTNING_VERBS, VERBS, main

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MAKEFILE = (REPO / "Makefile").read_text()
# make target -> the `sagan` verb that its ARGS go to
MAKE_VERBS = {
    "train": "fit", "sample": "sample", "eval": "eval", "attention": "attention", "interpolate": "interpolate",
    "export": "export", "bench": "bench", "bench-quality": "bench-quality", "bench-repair": "bench-quality",
    "bench-gpu": "bench-gpu", "predict": "predict", "repair": "repair",
}


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, words) of every `make ...` / `sagan ...` line in a code block, continuation lines joined."""
    found = []
    for path in DOCS:
        fence, pending = False, ""
        for number, line in enumerate(path.read_text().split("\n"), 1):
            if line.startswith("```"):
                fence, pending = not fence, ""
                continue
            if not fence:
                continue
            line = pending + line
            if not re.match(r"\s*([A-Z_]+=\S* )*(make|sagan) ", line):
                continue
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # OMP_NUM_THREADS=1 ...
                words = words[1:]
            if words and words[0] in ("make", "sagan"):
                found.append((f"{path.name}:{number}", words))
    return found


COMMANDS = documented_commands()


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", MAKEFILE, flags=re.M))


def _experiment(model: str | None, data: str) -> Path:
    """The experiment `make train` picks, as the Makefile does: sagan_<DATA> when it exists, else the first."""
    if model is None:
        model = "sagan" if (EXPERIMENTS / f"sagan_{data}.yaml").exists() else None
        model = model or sorted(EXPERIMENTS.glob(f"*_{data}.yaml"))[0].stem.removesuffix(f"_{data}")
    return EXPERIMENTS / f"{model}_{data}.yaml"


@functools.cache
def verb_help(verb: str) -> str:
    """What `sagan <verb> --help` prints (for bench-quality also its repair and video parts' own options)."""
    calls = [lambda: main([verb, "--help"])]
    if verb == "bench-quality":
        from sagan.benchmarks import repair, video

        calls += [lambda: repair.main(["--help"]), lambda: video.main(["--help"], "runs", "cpu")]
    out = io.StringIO()
    for call in calls:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            call()
    return out.getvalue()


def check_options(verb: str, options: list[str], where: str) -> list[str]:
    """The options of `options` that `verb` does not have (LightningCLI verbs: their top-level group)."""
    help_text = verb_help(verb)
    wrong = []
    for option in options:
        if not option.startswith("--"):
            continue
        name = option.split("=", 1)[0]
        if verb in LIGHTNING_VERBS:
            name = name.split(".", 1)[0]
        if not re.search(rf"{re.escape(name)}(\b|\.|=|\s)", help_text):
            wrong.append(f"{where}: sagan {verb} has no option {name}")
    return wrong


def test_the_docs_show_commands():
    assert len(COMMANDS) > 50 and any(words[:2] == ["make", "train"] for _, words in COMMANDS)


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_runs_as_written(where, words):
    wrong = []
    if words[0] == "make":
        target, rest = words[1], words[2:]
        assert target in make_targets(), f"{where}: no make target {target}"
        assignments = dict(word.split("=", 1) for word in rest if re.fullmatch(r"[A-Z_]+=.*", word))
        for name in assignments:
            assert re.search(rf"^{name} \?=", MAKEFILE, flags=re.M), f"{where}: the Makefile reads no {name}"
        if target == "train":
            experiment = _experiment(assignments.get("MODEL"), assignments.get("DATA", "digits"))
            assert experiment.is_file(), f"{where}: no experiment {experiment.name}"
        if "ARGS" in assignments:
            wrong += check_options(MAKE_VERBS[target], shlex.split(assignments["ARGS"]), where)
    else:
        verb, rest = words[1], words[2:]
        assert verb in VERBS or verb in LIGHTNING_VERBS, f"{where}: `sagan {verb}` is no verb"
        wrong += check_options(verb, rest, where)
        if "--config" in rest:
            config = rest[rest.index("--config") + 1]
            assert "<" in config or (REPO / config).is_file(), f"{where}: no file {config}"
    assert not wrong, wrong


def test_the_check_catches_a_wrong_option():
    assert check_options("sample", ["--n", "4", "--no_such_option"], "here") == ["here: sagan sample has no option --no_such_option"]
    assert check_options("fit", ["--trainer.devices=2", "--no_such_group.x=1"], "here") == [
        "here: sagan fit has no option --no_such_group"]
