"""The sequential gate (``--kick-stat sequential``): decide "matching" or "not matching" with a stated error
rate, from as few items as the evidence needs.

A compressed case is evaluated in rounds over a seeded random order of its item budget: 32 items, then
64, 128, ... (doubling), then the whole budget (``looks``). After each round the paired per-item scores are
turned into one number per item,

    Z = c - (1 - tol) d        (relative tolerance, higher is better;  (1 + tol) d - c  when lower is better)
    Z = c - d + tol            (absolute tolerance;                    d - c + tol      when lower is better)

so that "compressed is within tolerance of dense" (the tasks' population of items, of which the budget is a
sample) is exactly ``E[Z] >= 0``. Two test supermartingales bet on Z, one that the mean is below the boundary
(a large value shows *not matching*), one that it is above (*matching*): each is an average of products
``prod(1 -/+ lam (X_i - m))`` over a fixed grid of bets ``lam``, on Z rescaled to X in [0, 1] by the task's
score range (Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting", JRSS-B 2023:
the capital process of Section 4, with a grid mixture of constant bets as in their Section 5.7). By Ville's
inequality either reaches 1/a with probability at most a when its hypothesis is true, however many times it is
looked at: the early rounds spend ``EARLY_SHARE`` of alpha this way.

At the budget (the last round) a case that is still open gets one fixed-n look with the rest of alpha: the
one-sided normal bound of the mean of Z. The two parts add up (union bound) to alpha, which is the error rate
of each of the two decisions; the split buys a final look nearly as sharp as a fixed-n test (an anytime-valid
bound at a fixed n is wider by about sqrt(2 log(1/alpha)) / z_alpha, i.e. 1.5x at 5 %).

Pure Python, no pytest: the gate, the search, the simulator (benchmarks/gate_power.py) and --kick-plan use it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

FIRST_ROUND = 32
EARLY_SHARE = 0.2  # the share of alpha the anytime-valid early stops spend; the budget's fixed-n look spends the rest
BETS = (0.9, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05, 0.03, 0.02, 0.01)  # of the largest bet that stays >= 0
MIN_FINAL_N = 30  # below it the final look stays with the bets: a normal bound needs some items
FINAL_BETS = BETS[:3]  # a small budget's one fixed look: only a large effect can show, so only large bets
MATCHING, NOT_MATCHING, UNDECIDED = "matching", "not matching", "undecided"


def looks(budget: int, first: int = FIRST_ROUND) -> list[int]:
    """The items seen at each round: first, doubling, then the whole budget (``looks(100) == [32, 64, 100]``)."""
    if budget < 1:
        return []
    out, n = [], first
    while n < budget:
        out.append(n)
        n *= 2
    return [*out, budget]


@dataclass(frozen=True)
class Boundary:
    """How one item's pair of scores becomes Z, and Z's range (for the bets)."""

    tolerance: float  # a fraction: 0.05 relative (5 %) or 0.03 absolute (3pp)
    relative: bool
    higher_is_better: bool
    low: float  # the task's score range
    high: float

    def z(self, dense: float, compressed: float) -> float:
        better, worse = (compressed, dense) if self.higher_is_better else (dense, compressed)
        if self.relative:
            scale = 1 - self.tolerance if self.higher_is_better else 1 + self.tolerance
            return (compressed - scale * dense) if self.higher_is_better else (scale * dense - compressed)
        return better - worse + self.tolerance

    def z_range(self) -> tuple[float, float]:
        corners = [self.z(d, c) for d in (self.low, self.high) for c in (self.low, self.high)]
        return min(corners), max(corners)

    def allowed(self, dense_mean: float) -> float:
        """The tolerance as a relative drop at this dense mean."""
        if self.relative:
            return self.tolerance
        return self.tolerance / abs(dense_mean) if dense_mean else math.inf

    def drop(self, z_mean: float, dense_mean: float) -> float:
        """The relative drop that a mean of Z stands for (a bound of Z gives a bound of the drop)."""
        if not dense_mean:
            return math.inf if z_mean < 0 else 0.0
        return self.allowed(dense_mean) - z_mean / abs(dense_mean)


@dataclass(frozen=True)
class Decision:
    status: str  # MATCHING, NOT_MATCHING or UNDECIDED
    used: int  # items evaluated when it was reached
    budget: int
    alpha: float
    z_low: float  # bounds of E[Z] at the stop (anytime-valid at an early stop; the fixed-n bound at the budget)
    z_high: float
    final: bool  # reached at the budget's fixed-n look
    smallest_drop: float | None = None  # undecided: the smallest drop the budget could have shown

    @property
    def decided(self) -> bool:
        return self.status != UNDECIDED


class Bets:
    """The two betting supermartingales on a multiset of X values in [0, 1] (kept as counts: 0/1 scores give at
    most four distinct values, so a look costs the same at 32 items as at 100 000). ``bets``: the grid mixed
    (fractions of the largest bet that keeps the capital >= 0); any grid fixed before the data is valid."""

    def __init__(self, xs: Sequence[float], bets: Sequence[float] = BETS):
        self.counts = Counter(xs)
        self.bets = tuple(bets)

    def log_below(self, m: float) -> float:
        """log of the capital betting that the mean of X is below m (large: the mean is below m)."""
        if m >= 1:
            return -math.inf
        return _log_mixture(self.counts, [-f / (1 - m) for f in self.bets], m)

    def log_above(self, m: float) -> float:
        """log of the capital betting that the mean of X is above m (large: the mean is above m)."""
        if m <= 0:
            return -math.inf
        return _log_mixture(self.counts, [f / m for f in self.bets], m)

    def upper(self, alpha: float) -> float:
        """The anytime-valid upper confidence bound of the mean of X (log_below grows with m)."""
        return _bisect(lambda m: self.log_below(m) >= math.log(1 / alpha), rejects_high=True)

    def lower(self, alpha: float) -> float:
        """The anytime-valid lower confidence bound of the mean of X (log_above shrinks with m)."""
        return _bisect(lambda m: self.log_above(m) >= math.log(1 / alpha), rejects_high=False)


def _log_mixture(counts: Counter, lams: Sequence[float], m: float) -> float:
    logs = []
    for lam in lams:
        total = 0.0
        for x, k in counts.items():
            factor = 1 + lam * (x - m)
            if factor <= 0:
                total = -math.inf
                break
            total += k * math.log(factor)
        logs.append(total)
    top = max(logs)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in logs) / len(logs))


def _bisect(rejected, rejects_high: bool, steps: int = 40) -> float:
    """The edge of the set of m in [0, 1] the test rejects (the high end for an upper bound, the low end else)."""
    lo, hi = 0.0, 1.0
    if rejects_high and not rejected(hi - 1e-12):
        return 1.0
    if not rejects_high and not rejected(lo + 1e-12):
        return 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if rejected(mid) == rejects_high:
            hi = mid
        else:
            lo = mid
    return hi if rejects_high else lo


def decide(
    dense: Sequence[float],
    compressed: Sequence[float],
    boundary: Boundary,
    alpha: float,
    budget: int | None = None,
    first: int = FIRST_ROUND,
) -> Decision:
    """The sequential decision on paired scores given in evaluation order: the first look (of
    ``looks(budget)``) at which the evidence decides, or the budget's final look. ``dense``/``compressed``
    may stop short of the budget (a case that stopped early): the decision is then the one reached at its
    last full look, and re-deciding on more items never changes a decision already reached."""
    if len(dense) != len(compressed):
        raise ValueError(f"paired scores differ in length: dense {len(dense)}, compressed {len(compressed)}")
    budget = len(dense) if budget is None else budget
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha}")
    zs = [boundary.z(d, c) for d, c in zip(dense, compressed)]
    low, high = boundary.z_range()
    width = high - low
    for z in zs:
        if not low - 1e-9 <= z <= high + 1e-9:
            raise ValueError(f"a score lies outside the task's range [{boundary.low}, {boundary.high}]")
    xs = [min(1.0, max(0.0, (z - low) / width)) for z in zs]
    m0 = (0 - low) / width
    early = alpha * EARLY_SHARE
    threshold = math.log(1 / early)
    last = None
    for n in looks(budget, first):
        if n > len(xs):
            break
        last = n
        bets = Bets(xs[:n])
        if bets.log_below(m0) >= threshold:
            return _early(NOT_MATCHING, n, budget, alpha, bets, low, width)
        if bets.log_above(m0) >= threshold:
            return _early(MATCHING, n, budget, alpha, bets, low, width)
    if last is None:
        raise ValueError(f"no look reached: {len(xs)} items, the first round takes {min(first, budget)}")
    if last < budget:  # stopped short of the budget without a decision: can only be an unfinished case
        bets = Bets(xs[:last])
        return Decision(
            UNDECIDED, last, budget, alpha, low + width * bets.lower(early), low + width * bets.upper(early), False
        )
    return _final(zs, budget, alpha, low, width)


def _early(status: str, n: int, budget: int, alpha: float, bets: Bets, low: float, width: float) -> Decision:
    early = alpha * EARLY_SHARE
    z_low, z_high = low + width * bets.lower(early), low + width * bets.upper(early)
    return Decision(status, n, budget, alpha, z_low, z_high, n == budget)


def _final(zs: Sequence[float], budget: int, alpha: float, low: float, width: float) -> Decision:
    """The budget's fixed-n look with the alpha the early looks left: a one-sided normal bound of the mean of Z
    each way (with few items, the bets at that alpha instead)."""
    rest = alpha * (1 - EARLY_SHARE)
    n = len(zs)
    if n < MIN_FINAL_N:  # one look, fixed in advance: a mixture of the large bets alone is a valid test
        final = Bets([min(1.0, max(0.0, (z - low) / width)) for z in zs], FINAL_BETS)
        z_low, z_high = low + width * final.lower(rest), low + width * final.upper(rest)
        spread = None
    else:
        mean = math.fsum(zs) / n
        # the spread counts one pseudo-item at each end of Z's range: 40 items that all agree are not a
        # variance of 0 (a 5 % loss rate shows no loss in 40 items one time in eight)
        spread = math.sqrt(math.fsum((z - mean) ** 2 for z in (*zs, low, low + width)) / (n + 1) / n)
        q = NormalDist().inv_cdf(1 - rest)
        z_low, z_high = mean - q * spread, mean + q * spread
    status = NOT_MATCHING if z_high < 0 else MATCHING if z_low > 0 else UNDECIDED
    smallest = None
    if status == UNDECIDED:
        smallest = -(z_low - (z_low + z_high) / 2) if spread is None else NormalDist().inv_cdf(1 - rest) * spread
    return Decision(status, n, budget, alpha, z_low, z_high, True, smallest)


def smallest_drop(decision: Decision, boundary: Boundary, dense_mean: float) -> float | None:
    """The smallest relative drop an undecided case's budget could have shown as not matching (at its noise)."""
    if decision.smallest_drop is None:
        return None
    return boundary.drop(-decision.smallest_drop, dense_mean)


def drop_bounds(decision: Decision, boundary: Boundary, dense_mean: float) -> tuple[float, float]:
    """(lower, upper) bound of the relative drop at the stop (a high Z is a small drop)."""
    return boundary.drop(decision.z_high, dense_mean), boundary.drop(decision.z_low, dense_mean)
