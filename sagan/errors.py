"""Exception types that end a `sagan` command with one line on stderr instead of a traceback, and the
range check every constructor uses for its numeric arguments.

Convention: a constructor raises `ValueError` naming the argument and its allowed range for every numeric
argument (`check_range`); the CLI turns it into one line and exit status 2 before any run directory
exists. Commands raise `UsageError`.
"""

import math
import re
from collections.abc import Iterable


class UsageError(Exception):
    """A configuration, path or input the user can fix; the CLI prints it as one line and exits 2."""


class TrainingStopped(Exception):
    """Training ended early on purpose after saving a checkpoint: a signal arrived, or the losses stayed
    non-finite. The CLI prints the message as one line and exits with `exit_code`.

    Args:
        message: what happened and where the checkpoint is.
        exit_code: 128 + the signal number for signals (the shell's convention), 3 for non-finite losses.
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


_INTERVAL = re.compile(r"^\s*([\[(])\s*(-?inf|-?[0-9.e+-]+)\s*,\s*(-?inf|-?[0-9.e+-]+)\s*([\])])\s*$")


def _describe(interval: str) -> tuple[float, float, bool, bool, str]:
    match = _INTERVAL.match(interval)
    if match is None:
        raise ValueError(f"check_range: {interval!r} is no interval such as '[0, 1)' or '[1, inf)'")
    left, low, high, right = match.groups()
    lo, hi = float(low), float(high)
    closed_low, closed_high = left == "[", right == "]"
    if math.isinf(hi):
        text = f"{'>=' if closed_low else '>'} {low}"
    else:
        text = f"in {left}{low}, {high}{right}"
    return lo, hi, closed_low, closed_high, text


def check_range(owner: str, name: str, value: float | int | Iterable | None, interval: str) -> None:
    """Raises `ValueError` unless `value` is a finite number in `interval`.

    `interval` is written as in mathematics: "[0, 1)" (decays), "[0, 1]" (probabilities), "[0, inf)"
    (learning rates, penalty weights), "[1, inf)" (counts), "(0, inf)". Infinity and NaN are always
    refused. None passes (an option that is off); a tuple or list is checked element by element.

    Args:
        owner: the class (or function) whose argument this is, e.g. "ImageGAN".
        name: the argument's name, e.g. "ema_decay".
        value: the value given.
        interval: the allowed range.

    Raises:
        ValueError: "ImageGAN: ema_decay must be in [0, 1), got 2.0".
    """
    if value is None:
        return
    low, high, closed_low, closed_high, text = _describe(interval)
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_range(owner, f"{name}[{i}]", item, interval)
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)
    if not ok:
        raise ValueError(f"{owner}: {name} must be a finite number {text}, got {value!r}")


def check_ranges(owner: str, **checks: tuple[float | int | Iterable | None, str]) -> None:
    """`check_range` for several arguments: `check_ranges("ImageGAN", lr_g=(lr_g, "[0, inf)"), ...)`."""
    for name, (value, interval) in checks.items():
        check_range(owner, name, value, interval)


# --------------------------------------------------------------------- one line of a jsonargparse error
def one_line(message: str) -> str:
    """The most specific line of a nested jsonargparse message, prefixed with the key path it is about."""
    lines = [line.strip(" -") for line in str(message).splitlines() if line.strip(" -")]
    if not lines:
        return str(message)
    keys, last_key_line = [], -1
    for i, line in enumerate(lines):
        match = re.match(r'Parser key "([^"]+)":?\s*(.*)', line)
        if match:
            keys.append(match.group(1))
            last_key_line = i
            lines[i] = match.group(2)
    noise = ("NoneType", "Does not validate", "Subtypes:", "Errors:", "Given value", "Problem with given class_path")
    useful = [line for line in lines[last_key_line:] if line and not any(n in line for n in noise)]
    if not useful:
        useful = [line for line in lines if line and not any(n in line for n in noise)] or lines
    patterns = (
        "must be a finite number", "not accepted", "nrecognized", "does not exist", "No action", "not found", "Not a valid",
        "does not correspond to a subclass", "No module named", "has no attribute", "Expected",
    )
    best = next((line for p in patterns for line in useful if p in line), useful[0])
    return f"{'.'.join(keys)}: {best}" if keys else best


# ------------------------------------------------------------------------------ one line for OS errors
def os_error_of(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, or the one a checkpoint writer turned into torch's
    "unexpected pos" RuntimeError (a full disk while `torch.save` writes); else None."""
    if isinstance(error, OSError):
        return error
    if isinstance(error, RuntimeError) and isinstance(error.__context__, OSError):
        if any(mark in str(error) for mark in ("inline_container", "PytorchStreamWriter", "unexpected pos")):
            return error.__context__
    return None


def describe_os_error(error: OSError) -> str:
    """`No space left on device: runs/x/last.ckpt` from an OSError, in one line."""
    what = error.strerror or " ".join(str(error).split()) or type(error).__name__
    paths = [str(p) for p in (error.filename, getattr(error, "filename2", None)) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what


PEER_FAILURE_MARKS = (
    "Connection closed by peer", "Connection reset by peer", "remote worker crash", "NCCL communicator was aborted",
    "Broken pipe",
)


def is_peer_failure(error: BaseException) -> bool:
    """Whether `error` says another process of a distributed run went away (gloo's "Connection closed by
    peer", torch's DistBackendError / DistNetworkError, an aborted NCCL communicator)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"DistBackendError", "DistNetworkError"}:
        return True
    return isinstance(error, RuntimeError) and any(mark in str(error) for mark in PEER_FAILURE_MARKS)


def peer_failure_line(error: BaseException) -> str:
    """One line for a survivor of a distributed run whose peer died."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if any(mark in line for mark in PEER_FAILURE_MARKS)), lines[0] if lines else "")
    detail = re.sub(r"^\[[^\]]*\]\s*", "", detail.strip())  # gloo's "[.../pair.cc:561] " source prefix
    detail = detail.split(". This is typically")[0]
    return (
        f"another process of this distributed run stopped ({detail}); this one stops too: see that process's "
        "output, then continue with --resume last"
    )


# ------------------------------------------------------------------------------------- image sizes
ImageSize = int | tuple[int, int]  # an image's side (square), or its [height, width]


def image_hw(image_size: ImageSize) -> tuple[int, int]:
    """(height, width) of an `image_size` given as one side (a square) or as [height, width]."""
    if isinstance(image_size, (list, tuple)):
        if len(image_size) != 2:
            raise ValueError(f"image_size must be one side or [height, width], got {list(image_size)}")
        return int(image_size[0]), int(image_size[1])
    return int(image_size), int(image_size)


def check_image_size(
    owner: str, image_size: ImageSize, multiple: int = 1, reason: str = "", name: str = "image_size"
) -> tuple[int, int]:
    """Checks an image size given as one side or as [height, width]: whole numbers >= 1, each a multiple
    of `multiple` (what the architecture's strides need, `reason` saying which). Returns (height, width).

    Raises:
        ValueError: one line naming the owner, the argument and what it must be, e.g. "SAGANGenerator:
            image_size [64, 90] must be one side or [height, width] of positive multiples of 16".
    """
    sides = list(image_size) if isinstance(image_size, (list, tuple)) else [image_size]
    ok = len(sides) in (1, 2) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 and s % multiple == 0 for s in sides
    )
    if not ok:
        shown = sides if isinstance(image_size, (list, tuple)) else image_size
        what = f"positive multiples of {multiple}" if multiple > 1 else "positive whole numbers"
        what += f" ({reason})" if reason and multiple > 1 else ""
        raise ValueError(f"{owner}: {name} {shown} must be one side or [height, width] of {what}")
    return image_hw(image_size)
