"""Validation of the served-model options (--kick-engine openai-completions and its URLs), for config.build.

A served model is not compressed in this process: its compressed variant is whatever the server behind
--kick-compressed-url serves (test id ``...-served``). Messages name what the user wrote (the flag, or the
ini key and its file), as every config message does.
"""

from __future__ import annotations

from pytest_kick.compress import spec
from pytest_kick.errors import KickError

ENGINES = ("local", "openai-completions")


def served_settings(values: dict, text: dict, flag, from_ini) -> dict | None:
    """None for the local engine; for a served one, its KickConfig fields plus ``variants``."""
    from pytest_kick.engines.http import normalize_base_url

    engine = text["engine"]
    if engine not in ENGINES:
        raise KickError(f"{flag('engine')}: {engine!r} is not one of {', '.join(ENGINES)}")
    urls = [flag(name) for name in ("base-url", "compressed-url") if values.get(name) is not None]
    if engine == "local":
        if urls:
            raise KickError(f"{urls[0]} points at a server: add --kick-engine openai-completions")
        return None
    if values.get("base-url") is None and values.get("baseline-dir") is None:
        raise KickError(f"{flag('engine')} openai-completions needs --kick-base-url URL (the server of --kick-model), "
                        f"or dense results in --kick-baseline-dir DIR")
    for name in ("compressor", "ratio", "compressed", "export"):
        if values.get(name) is not None and name not in from_ini:
            raise KickError(f"--kick-{name} compresses in this process; a served model is not: serve the compressed "
                            f"model and pass --kick-compressed-url URL (--kick-export writes one to serve)")
    timeout = seconds(flag("timeout"), text["timeout"])
    found = {}
    for name in ("base-url", "compressed-url"):
        try:
            found[name] = None if values.get(name) is None else normalize_base_url(values[name])
        except KickError as err:
            raise KickError(f"{flag(name)}: {err}") from None
    base, compressed = found["base-url"], found["compressed-url"]
    return {"base_url": base, "compressed_url": compressed, "timeout": timeout,
            "variants": (("served", spec.CHECKPOINT),) if compressed else ()}


def seconds(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise KickError(f"{flag}: {text!r} is not a number of seconds") from None
    if not value > 0:
        raise KickError(f"{flag}: must be more than 0 seconds (got {text})")
    return value
