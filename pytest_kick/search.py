"""The largest matching compression level, found by search instead of a hand-written grid.

LLM-KICK's headline quantity is how far a model can be compressed before it stops *matching* its dense
self. Given ``verdict(level) -> (matching, info)`` (``info``: whatever the gate says about its confidence,
kept as is), :func:`search` evaluates a coarse grid of levels, then bisects to ``resolution``.

The axis runs from an uncompressed ``origin`` (never evaluated: dense matches itself) towards ``limit``,
in steps of ``resolution``: sparsity upward (origin 0.0, limit 0.9, steps of 0.05), bits downward
(origin 16, limit 2, steps of 1: fewer bits is more compression). Levels live on that lattice only, so a
level is identified by its step number and the cache never evaluates one twice, whatever floating-point
arithmetic would have made of it.

The paper's tables are not monotone (a method can fail at 30 % and match again at 40 %), so two
readings are reported, each with the evaluated level it rests on and the gate's info there:

- ``largest_matching``: the most compressed evaluated level that matches;
- ``largest_safe`` (the monotone reading): the most compressed evaluated level such that every
  evaluated level up to and including it matches.

Order of work: the whole coarse grid (so a matching island beyond a failure is seen), then bisection of
the cell holding the first failure (the safe reading), then of the cell above the largest matching
level (the matching reading). Each reading is *resolved* when the next lattice level was evaluated and
fails, or when it is the limit itself. A ``budget`` caps evaluations; when it stops the search the
readings are still the best the evaluated points support, and ``complete`` is False. ``known`` verdicts
(levels a session already gated, e.g. its ``--kick-ratio`` cases) seed the cache: they are used, never
re-evaluated, and cost no budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

VerdictFn = Callable[[float], "tuple[bool, Any]"]
SPARSITY_LIMIT = 0.8  # a pruner's search runs from dense towards this sparsity
QUANT_LADDER = ("w8", "w4g128", "w3g128", "w2g128")  # a quantizer's levels, more compression to the right


@dataclass(frozen=True)
class Axis:
    """A compression axis: ``origin`` (dense) towards ``limit`` in steps of ``resolution``."""

    origin: float
    limit: float
    resolution: float = 0.05
    coarse: int = 4  # lattice steps between coarse-grid levels

    def __post_init__(self):
        if not self.resolution > 0:
            raise ValueError(f"resolution must be positive, got {self.resolution!r}")
        if self.coarse < 1:
            raise ValueError(f"coarse must be at least 1 lattice step, got {self.coarse!r}")
        if self.steps < 1:
            raise ValueError(
                f"no level between origin {self.origin} and limit {self.limit} at resolution {self.resolution}"
            )

    @property
    def steps(self) -> int:
        """Number of compressed levels: step k = 1 .. steps."""
        return int(math.floor(abs(self.limit - self.origin) / self.resolution + 1e-9))

    def level(self, k: int) -> float:
        """The level of lattice step ``k`` (rounded, so 0.1 + 0.2 reads 0.3)."""
        sign = 1.0 if self.limit >= self.origin else -1.0
        return round(self.origin + sign * k * self.resolution, 10)

    def step(self, level: float) -> int:
        """The lattice step of ``level``; ValueError when it is not on the lattice."""
        k = round(abs(level - self.origin) / self.resolution)
        if not 1 <= k <= self.steps or abs(self.level(k) - level) > 1e-9:
            raise ValueError(
                f"level {level} is not on the search lattice ({self.origin} towards {self.limit} "
                f"in steps of {self.resolution})"
            )
        return k

    def grid(self) -> list[int]:
        """The coarse steps, least compressed first; the limit is always included."""
        return sorted(set(range(self.coarse, self.steps + 1, self.coarse)) | {self.steps})


def sparsity_axis(limit: float = 0.9, resolution: float = 0.05, coarse: int = 4) -> Axis:
    """Sparsity 0 (dense) upward to ``limit``: coarse levels 0.2, 0.4, ... by default."""
    return Axis(0.0, limit, resolution, coarse)


def bits_axis(dense_bits: int = 16, fewest: int = 2, resolution: int = 1, coarse: int = 4) -> Axis:
    """Bit-width downward from ``dense_bits``: coarse levels 12, 8, 4, 2 by default."""
    return Axis(float(dense_bits), float(fewest), float(resolution), coarse)


@dataclass(frozen=True)
class Point:
    level: float
    matching: bool
    info: Any
    known: bool = False  # given in ``known``, not evaluated by this search


@dataclass(frozen=True)
class Reading:
    """One reading: the level (None when no evaluated level qualifies), the gate's info there, whether
    the next lattice level was seen failing (or the level is the limit), and that next level."""

    level: float | None
    info: Any
    resolved: bool
    next_failing: float | None  # the next lattice level, evaluated and not matching; None if not known


@dataclass(frozen=True)
class SearchResult:
    axis: Axis
    points: tuple[Point, ...]  # known levels first, then in evaluation order; each level once
    largest_matching: Reading
    largest_safe: Reading
    complete: bool  # False when the budget stopped the search before both readings were resolved

    @property
    def evaluations(self) -> int:
        """Calls of the verdict this search made (known levels excluded)."""
        return sum(not p.known for p in self.points)

    def summary(self) -> str:
        """One line for the terminal: both readings, each with its bracket, and the evaluations spent."""

        def text(r: Reading) -> str:
            notes = ([] if r.resolved else ["unresolved"]) + (
                [f"{r.next_failing:g} fails"] if r.next_failing is not None else []
            )
            return ("none" if r.level is None else f"{r.level:g}") + (f" ({', '.join(notes)})" if notes else "")

        return (
            f"largest matching {text(self.largest_matching)}; largest safe {text(self.largest_safe)}; "
            f"{self.evaluations} evaluations, resolution {self.axis.resolution:g}"
            + ("" if self.complete else "; budget exhausted")
        )

    def as_dict(self) -> dict:
        """Plain data for the JSON report (``info`` as given: make it JSON-friendly upstream)."""

        def reading(r: Reading) -> dict:
            return {"level": r.level, "info": r.info, "resolved": r.resolved, "next_failing": r.next_failing}

        return {
            "origin": self.axis.origin,
            "limit": self.axis.limit,
            "resolution": self.axis.resolution,
            "points": [
                {"level": p.level, "matching": p.matching, "info": p.info, "known": p.known} for p in self.points
            ],
            "largest_matching": reading(self.largest_matching),
            "largest_safe": reading(self.largest_safe),
            "complete": self.complete,
            "evaluations": self.evaluations,
        }


class _Budget(Exception):
    """Raised inside the search when one more evaluation would exceed the budget."""


def search(
    verdict: VerdictFn, axis: Axis, budget: int | None = None, known: Mapping[float, tuple[bool, Any]] | None = None
) -> SearchResult:
    """Coarse grid, then bisection, over ``axis``; at most ``budget`` calls of ``verdict``."""
    if budget is not None and budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget!r}")
    seen: dict[int, tuple[bool, Any]] = {}  # lattice step -> (matching, info); the cache
    given = {axis.step(level): (bool(m), info) for level, (m, info) in (known or {}).items()}
    seen.update(given)
    order: list[int] = []

    def at(k: int) -> bool:
        if k == 0:
            return True  # dense: matching by definition, never evaluated
        if k not in seen:
            if budget is not None and len(order) >= budget:
                raise _Budget
            matching, info = verdict(axis.level(k))
            seen[k] = (bool(matching), info)
            order.append(k)
        return seen[k][0]

    def bisect(good: int, bad: int) -> None:
        """Narrow a cell whose ``good`` end matches and ``bad`` end fails to adjacent steps."""
        while bad - good > 1:
            middle = (good + bad) // 2
            if at(middle):
                good = middle
            else:
                bad = middle

    complete = True
    try:
        for k in axis.grid():
            at(k)
        failing = [k for k in seen if not seen[k][0]]
        if failing:  # safe reading: the cell below the first failure
            first = min(failing)
            bisect(max([k for k in seen if k < first] + [0]), first)
        best = max([k for k in seen if seen[k][0]], default=0)
        above = [k for k in seen if k > best]
        if above:  # matching reading: the cell above the largest matching level
            bisect(best, min(above))
    except _Budget:
        complete = False

    def reading(k: int | None) -> Reading:
        if k is None:  # nothing qualifies: resolved when the least compressed level was seen failing
            lowest = seen.get(1)
            fails = lowest is not None and not lowest[0]
            return Reading(None, None, fails, axis.level(1) if fails else None)
        nxt = seen.get(k + 1)
        resolved = k == axis.steps or (nxt is not None and not nxt[0])
        return Reading(
            axis.level(k), seen[k][1], resolved, axis.level(k + 1) if nxt is not None and not nxt[0] else None
        )

    matches = [k for k in seen if seen[k][0]]
    first_fail = min((k for k in seen if not seen[k][0]), default=None)
    safe = [k for k in matches if first_fail is None or k < first_fail]
    result_matching = reading(max(matches) if matches else None)
    result_safe = reading(max(safe) if safe else None)
    complete = complete and result_matching.resolved and result_safe.resolved
    points = tuple(Point(axis.level(k), *seen[k], known=True) for k in sorted(given))
    points += tuple(Point(axis.level(k), *seen[k]) for k in order)
    return SearchResult(axis, points, result_matching, result_safe, complete)
