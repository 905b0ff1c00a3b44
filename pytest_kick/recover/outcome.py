"""What a recovered case reports beside its verdict, from per-item scores (no torch).

Items are compared with the dense model, as the flip reports do (``gate.change``):

- ``lost``: items compressed scores worse than dense on;
- ``regained``: of those, items recovered scores at least as well as dense on — the knowledge was
  displaced, and an added parameter set re-routed the model to it;
- ``still_lost``: of those, items recovered still scores worse than dense on — forgotten, as far as
  this method can tell;
- ``newly_lost``: items compressed did *not* lose that recovered scores worse than dense on (what
  recovery broke).

``regained_share`` = regained / lost with a 95 % Wilson interval: above one half with its interval, the
data lean towards "displaced"; below, towards "forgotten".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.gate import change


@dataclass(frozen=True)
class Outcome:
    gap_closed: float | None  # share of the dense-compressed gap of the aggregate score closed; None: no gap
    lost: int
    regained: int
    still_lost: int
    newly_lost: int
    regained_share: float | None  # regained / lost
    regained_interval: tuple[float, float] | None  # 95 % Wilson interval of regained_share
    latency_overhead: float | None  # seconds per item recovered / compressed - 1

    def as_record(self) -> dict:
        return asdict(self)

    def reading(self) -> str:
        """One line a person reads: which way the items lean, with n and interval."""
        if not self.lost:
            return "no item was lost by compression: nothing to recover"
        low, high = self.regained_interval
        lean = "displaced" if low > 0.5 else "forgotten" if high < 0.5 else "undecided"
        return (
            f"{self.regained} of {self.lost} lost items regained ({self.regained_share:.0%}, 95% CI "
            f"{low:.0%}-{high:.0%}): {lean}; {self.newly_lost} newly lost"
        )


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def gap_closed(dense: float, compressed: float, recovered: float) -> float | None:
    """(recovered - compressed) / (dense - compressed): 1 is all the way back to dense, 0 no change,
    negative worse than compressed; the same for scores where lower is better. None when there is no gap."""
    gap = dense - compressed
    if gap == 0 or not all(math.isfinite(x) for x in (dense, compressed, recovered)):
        return None
    return (recovered - compressed) / gap


def outcome(
    dense: Sequence[float],
    compressed: Sequence[float],
    recovered: Sequence[float],
    aggregates: tuple[float, float, float],
    higher_is_better: bool = True,
    seconds: tuple[float, float] | None = None,
) -> Outcome:
    """The outcome of one recovered case: per-item scores of dense, compressed and recovered (same items,
    same order), the task's aggregate score of each, and (compressed, recovered) seconds per item."""
    if not len(dense) == len(compressed) == len(recovered):
        raise KickError(
            f"recovery outcome: {len(dense)} dense, {len(compressed)} compressed and "
            f"{len(recovered)} recovered scores; the items must be the same"
        )
    lost = regained = newly_lost = 0
    for d, c, r in zip(dense, compressed, recovered):
        recovered_lost = change(d, r, higher_is_better) == "lost"
        if change(d, c, higher_is_better) == "lost":
            lost += 1
            regained += not recovered_lost
        elif recovered_lost:
            newly_lost += 1
    overhead = None
    if seconds is not None and seconds[0] > 0:
        overhead = seconds[1] / seconds[0] - 1
    return Outcome(
        gap_closed(*aggregates),
        lost,
        regained,
        lost - regained,
        newly_lost,
        regained / lost if lost else None,
        wilson(regained, lost) if lost else None,
        overhead,
    )
