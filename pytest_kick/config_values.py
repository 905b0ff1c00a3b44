"""Value parsers shared by config.py and its option-group modules (config_judge.py, config_recover.py, ...)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pytest_kick.errors import KickError

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def whole_number(flag: str, text: str, minimum: int) -> int:
    """``text`` as an int of at least ``minimum``; otherwise one KickError naming ``flag``."""
    try:
        value = int(text)
    except ValueError:
        raise KickError(f"{flag}: {text!r} is not a whole number") from None
    if value < minimum:
        raise KickError(f"{flag}: must be at least {minimum} (got {value})")
    return value


def split_list(flag: str, value: str) -> list[str]:
    """The entries of a comma list. An empty entry (``0.5,,0.3``, a trailing comma) is an error: dropping it
    would hide a typo; a value with no entry at all is left to the caller ("give at least one ...")."""
    parts = [part.strip() for part in str(value).split(",")]
    if any(parts) and not all(parts):
        raise KickError(f"{flag}: {value!r} has an empty entry; separate the entries with single commas")
    return [part for part in parts if part]


def names(flag: str, value: str, known: list[str], what: str) -> tuple[str, ...]:
    chosen = split_list(flag, value)
    if not chosen:
        raise KickError(f"{flag}: give at least one {what}; known: {', '.join(known)}")
    for name in chosen:
        if name not in known:
            raise KickError(f"{flag}: unknown {what} {name!r}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(chosen))


def choice(flag: str, text: str, choices) -> str:
    if text not in choices:
        raise KickError(f"{flag}: {text!r} is not one of {', '.join(choices)}")
    return text


def boolean(flag: str, text: str | None) -> bool:
    if text is None:
        return False
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise KickError(f"{flag}: {text!r} is not true or false")
    return value in ("true", "1", "yes")


def device(flag: str, text: str) -> str:
    if not DEVICE.match(text):
        raise KickError(f"{flag}: {text!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return text


def output_path(flag: str, path: Path | None, directory: bool = False) -> Path | None:
    """An output path (report, summary, plots) that cannot be written is found now, not after a long run."""
    if path is None:
        return None
    if path.exists() and path.is_dir() != directory:
        what = "a directory; give a file path" if not directory else "a file; give a directory"
        raise KickError(f"{flag}: {path} is {what}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise KickError(f"{flag}: {parent} is a file, so {path} cannot be written")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise KickError(f"{flag}: {parent} is not writable, so {path} cannot be written")
            break
    return path
