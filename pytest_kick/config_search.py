"""Validation of --kick-search and --kick-search-resolution, for config.build (as config_served.py is for the
served options). Messages name what the user wrote: the flag, or the ini key and its file.

--kick-search gives each searchable compressor one search per task (pytest_kick/search_run.py) and takes the
place of that compressor's default --kick-ratio grid; ratios the user asked for still run as grid cases.
"""

from __future__ import annotations

from pytest_kick import compress
from pytest_kick.errors import KickError

MAX_RESOLUTION = 0.2  # the coarse grid's spacing: a coarser step would leave nothing to bisect


def searchable(name: str) -> bool:
    """Pruners search a sparsity, weight-only quantizers a bit width; int8 (w8a8 only) and a checkpoint have
    one setting and nothing to search (the compressor's ``searchable``)."""
    return compress.info(name).searchable


def search_settings(
    text: dict, flag, parse_bool, explicit_ratios: bool, compressors: tuple[str, ...], variants: tuple, engine
) -> dict:
    """KickConfig fields ``search``, ``search_resolution`` and ``searched``, plus ``variants`` (the grid
    without the default ratios of the compressors the search covers). ``engine``: the --kick-engine entry."""
    on = parse_bool(flag("search"), text["search"])
    raw = text["search-resolution"]
    try:
        resolution = float(raw)
    except ValueError:
        raise KickError(
            f"{flag('search-resolution')}: {raw!r} is not a number; give a sparsity step such as 0.05"
        ) from None
    if not 0 < resolution <= MAX_RESOLUTION:
        raise KickError(
            f"{flag('search-resolution')}: {raw} is outside (0, {MAX_RESOLUTION}]; give a sparsity step such as 0.05"
        )
    if not on:
        return {"search": False, "search_resolution": resolution, "searched": (), "variants": variants}
    if not engine.local_weights:
        raise KickError(
            f"{flag('search')} compresses the model in this process; it does not apply to --kick-engine {engine.name}"
        )
    searched = tuple(c for c in compressors if searchable(c))
    if not searched:
        found = [compress.info(c) for c in compress.names() if searchable(c)]
        pruners = ", ".join(c.name for c in found if not c.quantizer)
        quantizers = ", ".join(c.name for c in found if c.quantizer)
        raise KickError(
            f"{flag('search')}: none of {', '.join(compressors)} has a level to search; search a "
            f"pruner ({pruners}: sparsity) or a quantizer ({quantizers}: bits)"
        )
    if not explicit_ratios:
        variants = tuple((c, r) for c, r in variants if c not in searched)
    return {"search": True, "search_resolution": resolution, "searched": searched, "variants": variants}
