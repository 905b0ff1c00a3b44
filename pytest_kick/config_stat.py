"""Validation of the verdict's statistics options (--kick-stat, --kick-alpha, --kick-undecided, --kick-family,
--kick-plan), for config.build. Messages name what the user wrote: the flag, or the ini key and its file.

Without --kick-stat the rule follows the protocol: ``sequential`` under ``strict`` (the default), ``point`` under
``kick`` (LLM-KICK's own rule, to compare with the paper).
"""

from __future__ import annotations

from pytest_kick.config_values import boolean, choice
from pytest_kick.errors import KickError

STATS = ("sequential", "point", "ci")
UNDECIDED = ("pass", "fail")
FAMILIES = ("case", "session")
MAX_ALPHA = 0.5


def stat_settings(text: dict, flag, protocol: str) -> dict:
    """KickConfig fields ``stat``, ``alpha``, ``undecided``, ``family`` and ``plan``."""
    stat = text["stat"]
    stat = ("point" if protocol == "kick" else "sequential") if stat is None else choice(flag("stat"), stat, STATS)
    try:
        alpha = float(text["alpha"])
    except ValueError:
        raise KickError(f"{flag('alpha')}: {text['alpha']!r} is not a number (an error rate, e.g. 0.05)") from None
    if not 0 < alpha <= MAX_ALPHA:
        raise KickError(f"{flag('alpha')}: an error rate is above 0 and at most {MAX_ALPHA} (got {text['alpha']})")
    undecided = choice(flag("undecided"), text["undecided"], UNDECIDED)
    family = choice(flag("family"), text["family"], FAMILIES)
    if stat != "sequential":
        for name, default in (("undecided", "pass"), ("family", "case")):
            if text[name] != default:
                raise KickError(f"{flag(name)} applies to --kick-stat sequential (the rule here is {stat})")
    return {
        "stat": stat,
        "alpha": alpha,
        "undecided": undecided,
        "family": family,
        "plan": boolean(flag("plan"), text["plan"]),
    }
