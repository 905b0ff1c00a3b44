"""Validation of the engine options (--kick-engine, and the served engine's URLs), for config.build.

``engine_settings`` finds the entry --kick-engine names in the registry (extensions.engines) and runs its
``settings``; the bundled ones are below. A served model is not compressed in this process: its compressed
variant is whatever the server behind --kick-compressed-url serves (test id ``...-served``). Messages name
what the user wrote (the flag, or the ini key and its file), as every config message does.
"""

from __future__ import annotations

from pytest_kick import extensions
from pytest_kick.compress import spec
from pytest_kick.errors import KickError


def engine_settings(values: dict, text: dict, flag, from_ini) -> tuple[object, dict]:
    """(the engine entry, the KickConfig fields its settings give; ``variants`` among them for an engine
    without local weights, whose variants are not built here)."""
    name = text["engine"]
    if name not in extensions.engines:
        raise KickError(f"{flag('engine')}: {name!r} is not one of {', '.join(extensions.engines.names())}")
    entry = extensions.engines.get(name)
    for option in (o for e in extensions.engines.entries().values() for o in getattr(e, "options", ())):
        if values.get(option) is not None and option not in getattr(entry, "options", ()):
            takers = [e.name for e in extensions.engines.entries().values() if option in getattr(e, "options", ())]
            raise KickError(f"{flag(option)} points at a server: add --kick-engine {' or '.join(takers)}")
    settings = getattr(entry, "settings", None)
    found = dict(extensions.resolve(settings, f"engine {name}")(values, text, flag, from_ini) or {}) if settings else {}
    if not entry.local_weights:
        found.setdefault("variants", ())
    return entry, found


def local_settings(values: dict, text: dict, flag, from_ini) -> dict:
    """The local engine takes nothing beyond the common options."""
    return {}


def served_settings(values: dict, text: dict, flag, from_ini) -> dict:
    """The KickConfig fields of a served engine, plus ``variants``."""
    from pytest_kick.engines.http import normalize_base_url  # lazy: urllib.request + ssl, ~10 ms on every pytest run

    engine = text["engine"]
    if values.get("base-url") is None and values.get("baseline-dir") is None:
        raise KickError(
            f"{flag('engine')} {engine} needs --kick-base-url URL (the server of --kick-model), "
            f"or dense results in --kick-baseline-dir DIR"
        )
    for name in ("compressor", "ratio", "compressed", "export"):
        if values.get(name) is not None and name not in from_ini:
            raise KickError(
                f"--kick-{name} compresses in this process; a served model is not: serve the compressed "
                f"model and pass --kick-compressed-url URL (--kick-export writes one to serve)"
            )
    timeout = seconds(flag("timeout"), text["timeout"])
    found = {}
    for name in ("base-url", "compressed-url"):
        try:
            found[name] = None if values.get(name) is None else normalize_base_url(values[name])
        except KickError as err:
            raise KickError(f"{flag(name)}: {err}") from None
    base, compressed = found["base-url"], found["compressed-url"]
    return {
        "base_url": base,
        "compressed_url": compressed,
        "timeout": timeout,
        "variants": (("served", spec.CHECKPOINT),) if compressed else (),
    }


def seconds(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise KickError(f"{flag}: {text!r} is not a number of seconds") from None
    if not value > 0:
        raise KickError(f"{flag}: must be more than 0 seconds (got {text})")
    return value
