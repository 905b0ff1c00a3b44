"""The matching verdict: is the compressed model still matching its dense self on a task?

LLM-KICK calls a compressed model *matching* when its score is within 5 % of dense, relative:
compressed >= 0.95 x dense. An absolute tolerance (``3pp``: within 3 percentage points) is offered too.
The verdict is computed from paired per-item scores (dense and compressed answered the same items), so
it can say which items were lost and gained, not only how the mean moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

MATCHING = "matching"
NOT_MATCHING = "not matching"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Tolerance:
    """How far a compressed score may fall behind dense. ``kind`` is ``relative`` or ``absolute``.

    ``value`` is a fraction: ``5%`` is Tolerance(0.05, "relative"), ``3pp`` is Tolerance(0.03, "absolute").
    """

    value: float
    kind: str = "relative"

    def threshold(self, dense: float, higher_is_better: bool = True) -> float:
        """The worst compressed score that still counts as matching ``dense``."""
        if self.kind == "relative":
            margin = abs(dense) * self.value
        else:
            margin = self.value
        return dense - margin if higher_is_better else dense + margin

    def __str__(self) -> str:
        if self.kind == "relative":
            return f"{self.value * 100:g}% relative"
        return f"{self.value * 100:g}pp absolute"


@dataclass(frozen=True)
class Verdict:
    status: str  # MATCHING, NOT_MATCHING or INCONCLUSIVE
    dense: float
    compressed: float
    threshold: float
    drop: float  # relative drop, (dense - compressed) / dense, sign flipped for lower-is-better metrics
    n: int
    lost: int
    kept: int
    gained: int
    message: str

    @property
    def passed(self) -> bool:
        return self.status == MATCHING


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def relative_drop(dense: float, compressed: float, higher_is_better: bool = True) -> float:
    """How much worse compressed is than dense, as a fraction of dense (0.25 = 25 % worse)."""
    if dense == 0:
        return 0.0 if compressed == dense else math.copysign(math.inf, dense - compressed)
    change = (dense - compressed) / abs(dense)
    return change if higher_is_better else -change


def flips(dense: Sequence[float], compressed: Sequence[float], higher_is_better: bool = True):
    """(lost, kept, gained): items that got worse, items that stayed good, items that got better.

    For 0/1 scores these are the answers lost, kept and gained against dense. "kept" counts items
    dense already got right (score > 0) that compressed did not make worse.
    """
    sign = 1 if higher_is_better else -1
    lost = kept = gained = 0
    for d, c in zip(dense, compressed):
        delta = sign * (c - d)
        if delta < 0:
            lost += 1
        elif delta > 0:
            gained += 1
        elif d != 0:
            kept += 1
    return lost, kept, gained


def judge(
    *,
    task: str,
    label: str,
    dense: Sequence[float],
    compressed: Sequence[float],
    tolerance: Tolerance,
    higher_is_better: bool = True,
    floor: float = 0.0,
    metric: str = "score",
) -> Verdict:
    """Compare per-item scores of dense and compressed on the same items.

    ``floor`` is the score a model gets without knowing anything (0 for open QA, 0.25 for 4-way
    multiple choice). A dense model at or below it has no knowledge to lose, so no verdict can be
    drawn: the result is INCONCLUSIVE, never MATCHING.
    """
    if len(dense) != len(compressed):
        raise ValueError(f"paired scores differ in length: dense {len(dense)}, compressed {len(compressed)}")
    n = len(dense)
    d, c = _mean(dense), _mean(compressed)
    threshold = tolerance.threshold(d, higher_is_better)
    drop = relative_drop(d, c, higher_is_better)
    lost, kept, gained = flips(dense, compressed, higher_is_better)
    at_floor = n == 0 or (d <= floor if higher_is_better else d >= floor)
    if at_floor:
        status = INCONCLUSIVE
    elif higher_is_better:
        status = MATCHING if c >= threshold - 1e-12 else NOT_MATCHING
    else:
        status = MATCHING if c <= threshold + 1e-12 else NOT_MATCHING
    verdict = Verdict(status, d, c, threshold, drop, n, lost, kept, gained, "")
    return Verdict(**{**verdict.__dict__, "message": describe(task, label, verdict, tolerance, metric, floor)})


def describe(task: str, label: str, v: Verdict, tolerance: Tolerance, metric: str, floor: float) -> str:
    """The message a person reads when the item fails or is inconclusive."""
    if v.status == INCONCLUSIVE:
        head = (
            f"{task}: inconclusive for {label}: dense {metric} {v.dense:.3f} (n={v.n}) is at the task's floor "
            f"({floor:g}); a model that knows nothing here cannot show a loss"
        )
    elif v.status == NOT_MATCHING:
        head = f"{task}: {label} is not matching dense (tolerance {tolerance})"
    else:
        head = f"{task}: {label} is matching dense (tolerance {tolerance})"
    lines = [
        head,
        f"  dense {v.dense:.3f} (n={v.n})  compressed {v.compressed:.3f}  drop {v.drop * 100:.1f}%"
        f"  threshold {v.threshold:.3f}",
        f"  {v.lost} {'answer' if v.lost == 1 else 'answers'} lost, {v.kept} kept, {v.gained} gained",
    ]
    return "\n".join(lines)
