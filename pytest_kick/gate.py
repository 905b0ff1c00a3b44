"""The matching verdict: is the compressed model still matching its dense self on a task?

LLM-KICK calls a compressed model *matching* when its score is within 5 % of dense, relative:
compressed >= 0.95 x dense. An absolute tolerance (``3pp``: within 3 percentage points) is offered too.
The verdict is computed from paired per-item scores (dense and compressed answered the same items), so
it can say which items were lost and gained, not only how the mean moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from pytest_kick import chance, sequential, stats
from pytest_kick.finite import check_scores
from pytest_kick.formats import bound_text
from pytest_kick.record import Verdict
from pytest_kick.stats import relative_drop  # noqa: F401  (the drop the gate judges; re-exported)


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
class GateResult:
    """The gate's answer for one case: its status and the evidence behind it."""

    status: Verdict  # Verdict.MATCHING, Verdict.NOT_MATCHING or Verdict.INCONCLUSIVE
    dense: float
    compressed: float
    threshold: float
    drop: float  # relative drop, (dense - compressed) / dense, sign flipped for lower-is-better metrics
    n: int
    lost: int
    kept: int
    gained: int
    message: str
    drop_low: float | None = None  # two-sided 95 % paired-bootstrap interval of the drop
    drop_high: float | None = None
    drop_lower_bound: float | None = None  # one-sided 95 % lower bound (what --kick-stat ci judges)
    p_value: float | None = None  # exact McNemar test of dense vs compressed (0/1 scores only)
    warning: str | None = None  # e.g. the interval straddles the threshold: n cannot resolve the tolerance
    stat: str = "point"
    items_used: int | None = None  # sequential: the items the decision was reached on (None: all n)
    budget: int | None = None  # sequential: the item budget
    bound_low: float | None = None  # sequential: the drop's bounds at the stop, at error rate alpha each way
    bound_high: float | None = None
    alpha: float | None = None
    smallest_drop: float | None = None  # undecided: the smallest drop the budget could have shown

    @property
    def passed(self) -> bool:
        return self.status == Verdict.MATCHING


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def change(dense: float, compressed: float, higher_is_better: bool = True) -> str | None:
    """What happened to one item: "lost" (compressed is worse), "gained" (better), or None (unchanged)."""
    delta = (compressed - dense) if higher_is_better else (dense - compressed)
    return "lost" if delta < 0 else "gained" if delta > 0 else None


def flips(dense: Sequence[float], compressed: Sequence[float], higher_is_better: bool = True):
    """(lost, kept, gained): items that got worse, items that stayed good, items that got better.

    For 0/1 scores these are the answers lost, kept and gained against dense. "kept" counts items
    dense already got right (score > 0) that compressed did not make worse.
    """
    lost = kept = gained = 0
    for d, c in zip(dense, compressed):
        what = change(d, c, higher_is_better)
        if what == "lost":
            lost += 1
        elif what == "gained":
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
    floor: float | Sequence[float] | None = 0.0,
    metric: str = "score",
    stat: str = "point",
    seed: int = 0,
    figure: Callable[[float], float] | None = None,
    score_range: tuple[float, float] | None = None,
    budget: int | None = None,
    alpha: float = 0.05,
    dense_informative: bool | None = None,
) -> GateResult:
    """Compare per-item scores of dense and compressed on the same items.

    ``floor`` is the score a model gets without knowing anything (0 for open QA, 0.25 for 4-way
    multiple choice), one level for every item or one per item (a multiple-choice set mixing 3-, 4- and
    5-choice questions: 1/3, 1/4, 1/5); None for a metric without one (perplexity). ``figure`` turns a mean
    per-item score into the task's figure (perplexity: exp of the mean log-loss); the drop is judged on
    figures. A dense model not significantly above the floor (one-sided exact binomial test at 5 % for 0/1
    scores) has no knowledge to lose, so no verdict can be drawn: INCONCLUSIVE, never MATCHING.

    ``stat="point"`` judges the point estimate of the drop and adds a warning when the 95 % interval
    straddles the tolerance (n too small to tell). ``stat="ci"`` fails only when the drop exceeds the
    tolerance with 95 % confidence: the one-sided paired-bootstrap lower bound of the drop is above
    it. One-sided, because the gate asks a one-directional question (is the loss larger than
    allowed?); a two-sided 95 % interval would spend half its error rate on the other direction and
    lose power at the same false-failure rate.

    ``stat="sequential"`` (sequential.py) takes the pairs in evaluation order, which may stop short of
    ``budget`` items: NOT_MATCHING or MATCHING when shown with error <= ``alpha``, UNDECIDED when the budget ran
    out first. It needs the task's ``score_range`` and a plain mean (no ``figure``); without them the case is
    judged by ``ci`` on the whole budget.
    """
    if len(dense) != len(compressed):
        raise ValueError(f"paired scores differ in length: dense {len(dense)}, compressed {len(compressed)}")
    ids = range(1, len(dense) + 1)  # a NaN compares false with everything: it would pass or fail by accident
    check_scores(dense, [f"#{k}" for k in ids], f"{task}: dense")
    check_scores(compressed, [f"#{k}" for k in ids], f"{task}: {label}")
    n = len(dense)
    f = figure or (lambda mean: mean)
    d, c = f(_mean(dense)), f(_mean(compressed))
    threshold = tolerance.threshold(d, higher_is_better)
    drop = relative_drop(d, c, higher_is_better)
    lost, kept, gained = flips(dense, compressed, higher_is_better)
    if dense_informative is None:  # a sequential case's caller checked its whole budget's dense run
        dense_informative = informative(dense, floor, higher_is_better, seed)
    at_floor = not dense_informative
    low = high = lower = p_value = warning = None
    if n:
        low, high = stats.drop_interval(dense, compressed, higher_is_better=higher_is_better, seed=seed, figure=figure)
        lower = stats.drop_lower_bound(dense, compressed, higher_is_better=higher_is_better, seed=seed, figure=figure)
        if all(v in (0, 1) for v in (*dense, *compressed)):
            p_value = stats.mcnemar_exact(dense, compressed)
    allowed = drop_allowed(tolerance, d)  # the tolerance as a relative drop
    if stat == "sequential" and not sequential_applies(score_range, figure):
        stat = "ci"
    extra = {}
    point_fails = (c < threshold - 1e-12) if higher_is_better else (c > threshold + 1e-12)
    if at_floor:
        status = Verdict.INCONCLUSIVE
    elif stat == "sequential":
        status, extra = _sequential(dense, compressed, tolerance, higher_is_better, score_range, budget, alpha)
    elif stat == "ci":
        status = Verdict.NOT_MATCHING if lower is not None and lower > allowed + 1e-12 else Verdict.MATCHING
    else:
        status = Verdict.NOT_MATCHING if point_fails else Verdict.MATCHING
    if stat != "sequential" and not at_floor and low is not None and low <= allowed <= high:
        warning = (
            f"n={n} cannot resolve a {tolerance} drop on {task}: the 95% interval of the drop "
            f"[{low * 100:.1f}%, {high * 100:.1f}%] straddles the tolerance"
        )
    if status == Verdict.UNDECIDED and extra["smallest_drop"] is not None:  # the budget ran out (not a round)
        warning = (
            f"{task}: {label} undecided after all {n} items of the budget: neither a drop beyond {tolerance} "
            f"nor one within it is shown at error rate {alpha:g}; the smallest drop this budget could have shown "
            f"is about {extra['smallest_drop'] * 100:.1f}% (raise --kick-limit for a decision)"
        )
    verdict = GateResult(
        status, d, c, threshold, drop, n, lost, kept, gained, "", low, high, lower, p_value, warning, stat, **extra
    )
    return GateResult(**{**verdict.__dict__, "message": describe(task, label, verdict, tolerance, metric, floor)})


def sequential_applies(score_range, figure) -> bool:
    """The sequential rule bets on bounded scores averaged as they are: a task with a score range and no figure
    (perplexity's exp of a mean log-loss is unbounded) qualifies."""
    return score_range is not None and figure is None


def _sequential(dense, compressed, tolerance: Tolerance, higher_is_better, score_range, budget, alpha):
    """(status, GateResult fields) of the sequential decision (sequential.decide) on pairs in evaluation order."""
    boundary = sequential.Boundary(
        tolerance.value, tolerance.kind == "relative", higher_is_better, float(score_range[0]), float(score_range[1])
    )
    # pairs not in a seeded order (a recovered case evaluates every item in the task's order) get the budget's
    # one look only: the early looks assume the items come in random order
    first = len(dense) if budget is None else sequential.FIRST_ROUND
    try:
        decision = sequential.decide(dense, compressed, boundary, alpha, budget, first)
    except ValueError as err:
        raise ValueError(f"sequential gate: {err}") from None
    dense_mean = _mean(dense)
    bound_low, bound_high = sequential.drop_bounds(decision, boundary, dense_mean)
    status = {
        sequential.MATCHING: Verdict.MATCHING,
        sequential.NOT_MATCHING: Verdict.NOT_MATCHING,
        sequential.UNDECIDED: Verdict.UNDECIDED,
    }[decision.status]
    extra = {
        "items_used": decision.used,
        "budget": decision.budget,
        "bound_low": bound_low,
        "bound_high": bound_high,
        "alpha": alpha,
        "smallest_drop": sequential.smallest_drop(decision, boundary, dense_mean),
    }
    return status, extra


def informative(
    dense: Sequence[float], floor: float | Sequence[float] | None, higher_is_better: bool = True, seed: int = 0
) -> bool:
    """Whether dense has knowledge to lose: its score is significantly better than the task's floor
    (chance level; one per item where items differ, see ``chance.binomial_above_chance``). Otherwise no
    compressed model can show a loss and every verdict is inconclusive. A task without a floor
    (perplexity) is always informative."""
    if floor is None:
        return bool(dense)
    return bool(dense) and chance.significantly_above_floor(dense, floor, higher_is_better, seed=seed)


def drop_allowed(tolerance: Tolerance, dense: float) -> float:
    """The tolerance expressed as a relative drop (an absolute tolerance of 3pp at dense 0.60 is 5 %)."""
    if tolerance.kind == "relative":
        return tolerance.value
    return tolerance.value / abs(dense) if dense else math.inf


def sequential_text(v: GateResult) -> str:
    """``decided on 64 of 1000 items: drop >= 21.3% (error <= 5%)``: the sequential evidence at the stop."""
    head = {Verdict.NOT_MATCHING: "not matching shown", Verdict.MATCHING: "matching shown"}.get(v.status, "undecided")
    bound = bound_text(v.status.value, v.bound_low, v.bound_high, v.alpha)
    return f"{head} on {v.items_used} of {v.budget} items: {bound}"


def chance_text(floor: float | Sequence[float] | None) -> str:
    """A floor as a person reads it: ``0.25``, ``0.267 (mean of per-item chance 0.2-0.333)``, ``none``."""
    if floor is None:
        return "none"
    if isinstance(floor, (int, float)):
        return f"{floor:.3g}"
    levels = list(floor)
    if not levels:
        return "none"
    low, high = min(levels), max(levels)
    if low == high:
        return f"{low:.3g}"
    return f"{_mean(levels):.3g} (mean of per-item chance {low:.3g}-{high:.3g})"


def describe(
    task: str, label: str, v: GateResult, tolerance: Tolerance, metric: str, floor: float | Sequence[float] | None
) -> str:
    """The message a person reads when the item fails or is inconclusive."""
    if v.status == Verdict.INCONCLUSIVE:
        head = (
            f"{task}: inconclusive for {label}: dense {metric} {v.dense:.3f} (n={v.n}) is not significantly above "
            f"the task's floor ({chance_text(floor)}); a model that knows nothing here cannot show a loss"
        )
    elif v.status == Verdict.UNDECIDED:
        head = f"{task}: {label} is undecided against dense (tolerance {tolerance}): the item budget ran out"
    elif v.status == Verdict.NOT_MATCHING:
        head = f"{task}: {label} is not matching dense (tolerance {tolerance})"
    else:
        head = f"{task}: {label} is matching dense (tolerance {tolerance})"
    lines = [
        head,
        f"  dense {v.dense:.3f} (n={v.n})  compressed {v.compressed:.3f}  drop {v.drop * 100:.1f}%"
        f"  threshold {v.threshold:.3f}",
        f"  {v.lost} {'answer' if v.lost == 1 else 'answers'} lost, {v.kept} kept, {v.gained} gained",
    ]
    if v.items_used is not None:
        lines.append(f"  {sequential_text(v)}")
    if v.drop_low is not None:
        evidence = f"  95% CI of drop [{v.drop_low * 100:.1f}%, {v.drop_high * 100:.1f}%]"
        evidence += f", one-sided 95% lower bound {v.drop_lower_bound * 100:.1f}%"
        if v.p_value is not None:
            evidence += f", McNemar p={v.p_value:.3g}"
        lines.append(evidence + f" (--kick-stat {v.stat})")
    if v.warning:
        lines.append(f"  note: {v.warning}")
    return "\n".join(lines)
