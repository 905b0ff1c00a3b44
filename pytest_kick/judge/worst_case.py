"""A compressed item the judge failed on: scored at the task's floor for the verdict, and the verdict with it left out.

When the judge cannot rate a compressed answer (a garbled reply it refuses to score, a request that failed),
leaving the item out favours the compressed model: the answers most likely to be broken are the ones that
vanish from the pairing. So the verdict scores such an item at the task's floor (the worst case), and also
computes the verdict with the item left out. When the two agree, that is the verdict; when they differ the
case is inconclusive, saying which items it hangs on and what each reading gives.

Items the judge failed on in the *dense* run have no baseline to compare with; they are left out of both
runs (runtime.py, errors.py) before this module sees the scores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

from pytest_kick.judge.errors import is_error
from pytest_kick.record import Verdict


@dataclass(frozen=True)
class Decision:
    result: object  # the gate's result the case reports (gate.GateResult), inconclusive when the readings differ
    worst: object  # the verdict with each compressed judge error scored at the floor
    left_out: object | None  # the verdict with those items left out (None: no compressed judge error)
    items: int  # compressed items the judge failed on (dense judged)

    def record(self) -> dict:
        """For the case's ``judge_errors`` record."""
        return {
            "compressed_at_floor": self.items,
            "verdict_at_floor": self.worst.status.value,
            "verdict_left_out": None if self.left_out is None else self.left_out.status.value,
        }


def decide(
    dense: Sequence[float], compressed: Sequence[float], floor: float, gate: Callable[[list, list], object]
) -> Decision:
    """The verdict of ``gate(dense, compressed)`` on per-item scores whose compressed NaNs are judge errors.

    ``dense`` holds no NaN (dense judge errors are left out before). ``gate`` returns a result with a
    ``status`` (a ``record.Verdict``) and a ``message``."""
    if len(dense) != len(compressed):
        raise ValueError(f"dense has {len(dense)} item scores, compressed {len(compressed)}")
    lost = [k for k, c in enumerate(compressed) if is_error(c)]
    if not lost:
        result = gate(list(dense), list(compressed))
        return Decision(result, result, None, 0)
    worst = gate(list(dense), [floor if is_error(c) else c for c in compressed])
    kept = [k for k in range(len(dense)) if k not in set(lost)]
    left_out = gate([dense[k] for k in kept], [compressed[k] for k in kept]) if kept else None
    if left_out is None or left_out.status == worst.status:
        return Decision(worst, worst, left_out, len(lost))
    why = (
        f"inconclusive: the verdict hangs on {len(lost)} compressed item{'s' if len(lost) > 1 else ''} the judge "
        f"failed on: scored at the floor ({floor:g}) it is {worst.status.value}, left out it is "
        f"{left_out.status.value}"
    )
    result = dataclasses.replace(worst, status=Verdict.INCONCLUSIVE, message=f"{why}\n{worst.message}", warning=None)
    return Decision(result, worst, left_out, len(lost))
