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
    one setting and nothing to search."""
    info = compress.info(name)
    return "sparsity" in info.kinds or ("quant" in info.kinds and info.act_bits is None)


def search_settings(text: dict, flag, parse_bool, explicit_ratios: bool, compressors: tuple[str, ...],
                    variants: tuple, served: bool) -> dict:
    """KickConfig fields ``search``, ``search_resolution`` and ``searched``, plus ``variants`` (the grid
    without the default ratios of the compressors the search covers)."""
    on = parse_bool(flag("search"), text["search"])
    raw = text["search-resolution"]
    try:
        resolution = float(raw)
    except ValueError:
        raise KickError(f"{flag('search-resolution')}: {raw!r} is not a number; give a sparsity step such as 0.05") \
            from None
    if not 0 < resolution <= MAX_RESOLUTION:
        raise KickError(f"{flag('search-resolution')}: {raw} is outside (0, {MAX_RESOLUTION}]; "
                        f"give a sparsity step such as 0.05")
    if not on:
        return {"search": False, "search_resolution": resolution, "searched": (), "variants": variants}
    if served:
        raise KickError(f"{flag('search')} compresses the model in this process; it does not apply to "
                        f"--kick-engine openai-completions")
    searched = tuple(c for c in compressors if searchable(c))
    if not searched:
        raise KickError(f"{flag('search')}: none of {', '.join(compressors)} has a level to search; search a "
                        f"pruner (magnitude, wanda, sparsegpt: sparsity) or a quantizer (gptq, rtn, awq: bits)")
    if not explicit_ratios:
        variants = tuple((c, r) for c, r in variants if c not in searched)
    return {"search": True, "search_resolution": resolution, "searched": searched, "variants": variants}
