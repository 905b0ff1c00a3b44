"""What judge errors do to a case: counted always, the case an error beyond a stated share.

A judge error leaves an item without a score (NaN from the scorer). The gate pairs dense and compressed
on the items both have a score for; ``paired`` gives those, and how many were lost. A compressed item the
judge failed on is also scored at the task's floor for the verdict (worst_case.py, from ``Screen.worst``).
When the lost items exceed ``MAX_ERROR_SHARE`` of the case's items, ``check_share`` raises
``JudgeErrorsExceeded``: the case is then an error (neither passed nor failed), since a verdict on what is
left could be anything.
"""

from __future__ import annotations

import math
from typing import Sequence

from pytest_kick.errors import KickError

# What the judge spent during an item (judge/session.py takes it; report_judge.py adds it up over a session):
# the backend's and runner's counters (JUDGE_STATS), then the items judged and their errors.
JUDGE_STATS = (
    "requests",
    "retries",
    "cache_hits",
    "tokens_in",
    "tokens_out",
    "asks",
    "unreadable_first",
    "reasks",
    "unreadable",
    "failed_asks",
)
COUNTS = JUDGE_STATS + ("items", "item_errors", "order_pairs", "order_disagreements")

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


def check_share(
    case: str, errors: int, items: int, max_share: float = MAX_ERROR_SHARE, reasons: Sequence[str] = ()
) -> None:
    """Raise ``JudgeErrorsExceeded`` when ``errors`` of ``items`` is more than ``max_share``."""
    if items and errors / items > max_share:
        why = f"; e.g. {reasons[0]}" if reasons else ""
        raise JudgeErrorsExceeded(
            f"{case}: the judge failed on {errors} of {items} items "
            f"({errors / items:.0%}, more than {max_share:.0%}): no verdict{why}"
        )


def runs(dense_errors: int, compressed_errors: int | None) -> str:
    """'dense 1, compressed 2', or 'dense 1' when no compressed run was judged."""
    return f"dense {dense_errors}" + ("" if compressed_errors is None else f", compressed {compressed_errors}")


def kept_items(dense: Sequence[float], compressed: Sequence[float] | None) -> "Screen":
    """Which items a case pairs (judged in dense and, for a compressed case, in compressed too); and, when the
    judge failed on compressed items it judged in dense, the scores of every dense-judged item for the worst
    case (worst_case.py)."""
    other = compressed if compressed is not None else dense
    kept, lost = paired(dense, other)
    screen = Screen(len(dense), count(dense), count(compressed) if compressed is not None else None, lost, tuple(kept))
    judged = [k for k, d in enumerate(dense) if not is_error(d)]
    if compressed is not None and any(is_error(compressed[k]) for k in judged):
        screen.worst = ([dense[k] for k in judged], [compressed[k] for k in judged])
    return screen


class Screen:
    """The judge errors of one case: counted per run, the items left out of the pairing, the verdict's fate.

    ``compressed_errors`` is None when no compressed run was judged: a dense case, or a compressed case
    whose dense run alone already had too many (the compressed model is then not evaluated)."""

    def __init__(
        self,
        items: int,
        dense_errors: int,
        compressed_errors: int | None,
        left_out: int,
        kept: tuple = (),
        max_share: float = MAX_ERROR_SHARE,
    ):
        self.items, self.dense_errors, self.compressed_errors = items, dense_errors, compressed_errors
        self.left_out, self.kept, self.max_share = left_out, kept, max_share
        self.worst: tuple[list[float], list[float]] | None = None  # dense-judged items' scores, compressed NaN kept
        self.decision: dict = {}  # worst_case.Decision.record() once the verdict is drawn

    @property
    def exceeded(self) -> bool:
        return bool(self.items) and self.left_out / self.items > self.max_share

    def record(self) -> dict:
        return {
            "items": self.items,
            "dense": self.dense_errors,
            "compressed": self.compressed_errors,
            "left_out": self.left_out,
            "max_share": self.max_share,
            "exceeded": self.exceeded,
            **self.decision,
        }

    def note(self) -> str:
        """One line for a case message ('' when every item was judged)."""
        if not self.left_out:
            return ""
        return (
            f"judge errors: {self.left_out} of {self.items} items left out of the pairing "
            f"({runs(self.dense_errors, self.compressed_errors)}; at most {self.max_share:.0%} allowed)"
            + ("; the verdict scores the compressed ones at the task's floor" if self.worst is not None else "")
        )

    def check(self, case: str, reason: str = "") -> None:
        check_share(case, self.left_out, self.items, self.max_share, (reason,) if reason else ())
