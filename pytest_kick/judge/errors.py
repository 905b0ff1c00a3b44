"""What judge errors do to a case: counted always, the case an error beyond a stated share.

A judge error leaves an item without a score (NaN from the scorer). The gate pairs dense and compressed
on the items both have a score for; ``paired`` gives those, and how many were lost. When the lost items
exceed ``MAX_ERROR_SHARE`` of the case's items, ``check_share`` raises ``JudgeErrorsExceeded``: the case
is then an error (neither passed nor failed), since a verdict on what is left could be anything.
"""

from __future__ import annotations

import math
from typing import Sequence

from pytest_kick.errors import KickError

MAX_ERROR_SHARE = 0.05  # more than 1 item in 20 without a judgment: no verdict


class JudgeErrorsExceeded(KickError):
    """Too many items of a case have no judgment for a verdict."""


def is_error(score: float) -> bool:
    return isinstance(score, float) and math.isnan(score)


def count(scores: Sequence[float]) -> int:
    return sum(is_error(s) for s in scores)


def paired(dense: Sequence[float], compressed: Sequence[float]) -> tuple[list[int], int]:
    """(indices of the items judged in both runs, number of items lost to judge errors in either)."""
    if len(dense) != len(compressed):
        raise ValueError(f"dense has {len(dense)} item scores, compressed {len(compressed)}")
    kept = [k for k, (d, c) in enumerate(zip(dense, compressed)) if not is_error(d) and not is_error(c)]
    return kept, len(dense) - len(kept)


def check_share(case: str, errors: int, items: int, max_share: float = MAX_ERROR_SHARE,
                reasons: Sequence[str] = ()) -> None:
    """Raise ``JudgeErrorsExceeded`` when ``errors`` of ``items`` is more than ``max_share``."""
    if items and errors / items > max_share:
        why = f"; e.g. {reasons[0]}" if reasons else ""
        raise JudgeErrorsExceeded(f"{case}: the judge failed on {errors} of {items} items "
                                  f"({errors / items:.0%}, more than {max_share:.0%}): no verdict{why}")
