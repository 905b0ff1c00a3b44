"""Value parsers shared by config.py and its option-group modules (config_judge.py, config_recover.py, ...)."""

from __future__ import annotations

from pytest_kick.errors import KickError


def whole_number(flag: str, text: str, minimum: int) -> int:
    """``text`` as an int of at least ``minimum``; otherwise one KickError naming ``flag``."""
    try:
        value = int(text)
    except ValueError:
        raise KickError(f"{flag}: {text!r} is not a whole number") from None
    if value < minimum:
        raise KickError(f"{flag}: must be at least {minimum} (got {value})")
    return value
