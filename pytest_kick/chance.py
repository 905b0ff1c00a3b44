"""Is dense above chance? The exact one-sided tests behind "inconclusive": binomial for one chance level,
Poisson-binomial where the items' levels differ (multiple choice with 3, 4 or 5 choices), and a bootstrap
of the mean for scores that are not 0/1. Pure Python, like stats.py."""

from __future__ import annotations

import math
import operator
import random
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate, repeat

from pytest_kick.stats import _check_fraction, _is_binary, _quantile, _resampled_sums


def _log_binomial_pmf(k: int, n: int, p: float) -> float:
    return math.log(math.comb(n, k)) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_above_chance(successes: int, n: int, chance: float | Sequence[float], alpha: float = 0.05) -> bool:
    """Exact one-sided test: True when P(X >= successes) < alpha for X the successes of a model that knows
    nothing.

    ``chance`` is that model's success rate: one number for every item (0.25 for 4-way multiple choice),
    then X is Binomial(n, chance); or one rate per item (n of them: 1/3, 1/4, 1/5 for a set mixing 3-, 4- and
    5-choice questions), then X is Poisson-binomial, the sum of independent Bernoulli(chance[i])
    (:func:`poisson_binomial_tail`). Items at chance 0 count as soon as they succeed (with ``chance == 0``
    any success counts).

    The binomial tail is summed exactly term by term from the side where the terms shrink (the upper tail
    directly, or 1 minus the lower tail), in logs with ``math.comb`` so n in the tens of thousands neither
    overflows nor takes long.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    if not isinstance(chance, (int, float)):
        levels = [float(c) for c in chance]
        if len(levels) != n:
            raise ValueError(f"{len(levels)} chance levels for {n} items")
        if len(set(levels)) > 1:
            return poisson_binomial_tail(successes, levels) < alpha
        chance = levels[0] if levels else 0.0
    if not 0 <= chance <= 1:
        raise ValueError(f"chance must be between 0 and 1, got {chance}")
    if chance == 0:
        return successes >= 1
    if successes == 0 or chance == 1:
        return False  # P(X >= successes) is 1
    ratio = chance / (1 - chance)
    if successes > n * chance:  # upper tail, terms decrease from k = successes upwards
        term = math.exp(_log_binomial_pmf(successes, n, chance))
        tail = 0.0
        for k in range(successes, n + 1):
            tail += term
            term *= (n - k) / (k + 1) * ratio
        return tail < alpha
    term = math.exp(_log_binomial_pmf(successes - 1, n, chance))  # lower tail, k = successes-1 down to 0
    below = 0.0
    for k in range(successes - 1, -1, -1):
        below += term
        term *= k / (n - k + 1) / ratio
    return 1.0 - below < alpha


_WINDOW_SIGMAS = 14  # binomial mass beyond 14 standard deviations is below 1e-40: dropped


def _binomial_window(n: int, p: float) -> tuple[int, list[float]]:
    """(lo, pmf): P(Binomial(n, p) = lo + i) for the values within _WINDOW_SIGMAS deviations of the mean."""
    sigma = math.sqrt(n * p * (1 - p))
    lo = max(0, math.floor(n * p - _WINDOW_SIGMAS * sigma - 2))
    hi = min(n, math.ceil(n * p + _WINDOW_SIGMAS * sigma + 2))
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    return lo, [
        math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
        for k in range(lo, hi + 1)
    ]


def poisson_binomial_tail(successes: int, chances: Sequence[float]) -> float:
    """P(X >= successes) for X the sum of independent Bernoulli(chances[i]): the number of items a model
    that knows nothing gets right when item i has its own chance level.

    Exact up to floating-point rounding and a dropped mass below 1e-40: items sharing a level form one
    binomial; the pmfs of all levels but the last (each within 14 standard deviations of its mean) are
    convolved, and the tail is summed against the last level's survival function. Multiple choice with
    2 or 3 distinct numbers of options costs O(n) plus at most one convolution of windows a few times
    sqrt(n) wide, so n in the tens of thousands stays well under a second.
    """
    counts = Counter(float(c) for c in chances)
    for level in counts:
        if not 0 <= level <= 1:
            raise ValueError(f"chance must be between 0 and 1, got {level}")
    offset, pmf = 0, [1.0]  # pmf[i] = P(sum of the levels so far = offset + i)
    windows = []
    for level, count in sorted(counts.items()):
        if level == 1:
            offset += count
        elif level > 0:
            windows.append(_binomial_window(count, level))
    if not windows:
        return 1.0 if offset >= successes else 0.0
    for lo, window in windows[:-1]:
        merged = [0.0] * (len(pmf) + len(window) - 1)
        for i, a in enumerate(pmf):
            if a:
                end = i + len(window)
                merged[i:end] = map(operator.add, merged[i:end], map(operator.mul, window, repeat(a)))
        offset, pmf = offset + lo, merged
    lo, window = windows[-1]
    survival = list(accumulate(reversed(window)))[::-1]  # survival[j] = P(last >= lo + j)
    tail = []
    for i, a in enumerate(pmf):  # P(X >= successes) = sum_i P(rest = offset + i) P(last >= successes - offset - i)
        j = successes - offset - i - lo
        if a and j < len(survival):
            tail.append(a * (survival[j] if j > 0 else survival[0] if j == 0 else 1.0))
    return min(1.0, math.fsum(tail))


def significantly_above_floor(
    dense: Sequence[float],
    floor: float | Sequence[float],
    higher_is_better: bool = True,
    alpha: float = 0.05,
    seed: int = 0,
) -> bool:
    """Is dense's mean score significantly better than ``floor`` (the score of knowing nothing)?

    ``floor`` is one level for every item, or one per item (multiple choice with a varying number of
    choices: 1 / choices of each item). 0/1 scores: the exact test :func:`binomial_above_chance`, binomial
    or Poisson-binomial (for lower-is-better 0/1 scores, the same test on the zeros against 1 - floor).
    Other scores: a bootstrap of the mean (2000 resamples, ``seed``) whose one-sided lower bound at
    1 - alpha must exceed the mean floor (for lower-is-better metrics, whose upper bound must stay below it).
    """
    dense = list(dense)
    if not dense:
        raise ValueError("no scores: paired statistics need at least one item")
    _check_fraction("alpha", alpha)
    n = len(dense)
    levels = [float(floor)] * n if isinstance(floor, (int, float)) else [float(f) for f in floor]
    if len(levels) != n:
        raise ValueError(f"{len(levels)} chance levels for {n} scores")
    if _is_binary(dense):
        good = sum(1 for v in dense if v == 1) if higher_is_better else sum(1 for v in dense if v == 0)
        chances = levels if higher_is_better else [1 - f for f in levels]
        if all(c < 0 for c in chances):
            return True  # every mean of 0/1 scores is better than a floor outside [0, 1]
        return binomial_above_chance(good, n, [min(max(c, 0.0), 1.0) for c in chances], alpha)
    mean_floor = math.fsum(levels) / n if all(map(math.isfinite, levels)) else levels[0]
    rng = random.Random(seed)
    means = sorted(sum_d / n for sum_d, _ in _resampled_sums(dense, dense, 2000, rng))
    if higher_is_better:
        return _quantile(means, alpha) > mean_floor
    return _quantile(means, 1 - alpha) < mean_floor
