"""Paired statistics for the matching verdict: how sure are we that compressed lost knowledge?

Dense and compressed answer the SAME items, so their per-item scores (lists of floats of equal
length; usually 0/1 correctness, sometimes continuous) are compared pairwise: the bootstrap resamples
items, never the two models independently, and McNemar's test looks only at the items on which the two
models disagree.

Pure Python (``random`` and ``math``): no torch, no numpy, no pytest. Every random function takes a
``seed`` and draws from its own ``random.Random(seed)``, never from the global random state.
"""

from __future__ import annotations

import math
import operator
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, repeat


# A resample of n items is a multinomial draw over the distinct (dense, compressed) pairs. When there
# are few of them (0/1 scores have at most 4) it is drawn as a handful of binomials, independent of n;
# otherwise item indices are drawn one by one. Both draw from the same distribution.
_FEW_DISTINCT_PAIRS = 32


def relative_drop(dense_mean: float, compressed_mean: float, higher_is_better: bool = True) -> float:
    """How much worse compressed is than dense, as a fraction of dense (0.25 = 25 % worse).

    This is the number the gate judges. A dense mean of 0 gives 0.0 when compressed is 0 too,
    otherwise +inf or -inf (the drop is undefined, its sign is not).
    """
    if dense_mean == 0:
        return 0.0 if compressed_mean == dense_mean else math.copysign(math.inf, dense_mean - compressed_mean)
    change = (dense_mean - compressed_mean) / abs(dense_mean)
    return change if higher_is_better else -change


def _paired(dense: Sequence[float], compressed: Sequence[float]) -> tuple[list[float], list[float]]:
    dense, compressed = list(dense), list(compressed)
    if len(dense) != len(compressed):
        raise ValueError(f"paired scores differ in length: dense {len(dense)}, compressed {len(compressed)}")
    if not dense:
        raise ValueError("no scores: paired statistics need at least one item")
    return dense, compressed


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """One draw of Binomial(n, p), by inversion in the order mode, mode-1, mode+1, mode-2, ...

    Any fixed order of the support gives an exact inversion sampler; starting at the mode takes
    O(sqrt(n p (1-p))) steps on average instead of O(n).
    """
    if n == 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    q = 1.0 - p
    mode = min(n, int((n + 1) * p))
    pmf = math.exp(math.lgamma(n + 1) - math.lgamma(mode + 1) - math.lgamma(n - mode + 1)
                   + mode * math.log(p) + (n - mode) * math.log(q))
    u = rng.random() - pmf
    if u <= 0:
        return mode
    lo = hi = mode
    pmf_lo = pmf_hi = pmf
    while lo > 0 or hi < n:
        if lo > 0:
            pmf_lo *= lo / (n - lo + 1) * q / p  # P(lo - 1) from P(lo)
            lo -= 1
            u -= pmf_lo
            if u <= 0:
                return lo
        if hi < n:
            pmf_hi *= (n - hi) / (hi + 1) * p / q  # P(hi + 1) from P(hi)
            hi += 1
            u -= pmf_hi
            if u <= 0:
                return hi
    return mode  # u fell into the rounding error of the probabilities (they sum to 1 - tiny)


def _resampled_sums(dense: list[float], compressed: list[float], n_boot: int,
                    rng: random.Random) -> Iterator[tuple[float, float]]:
    """(sum of dense, sum of compressed) over the same n resampled items, n_boot times."""
    n = len(dense)
    groups = list(Counter(zip(dense, compressed)).items())
    if len(groups) <= _FEW_DISTINCT_PAIRS:
        *first, ((d_last, c_last), _) = groups
        for _ in range(n_boot):
            left, unseen, sum_d, sum_c = n, n, 0.0, 0.0
            for (d, c), count in first:
                drawn = _binomial(rng, left, count / unseen)
                left, unseen = left - drawn, unseen - count
                sum_d, sum_c = sum_d + drawn * d, sum_c + drawn * c
            yield sum_d + left * d_last, sum_c + left * c_last
    else:
        pairs = [complex(d, c) for d, c in zip(dense, compressed)]  # both sums in one C-level sum()
        for _ in range(n_boot):
            total = sum(rng.choices(pairs, k=n))
            yield total.real, total.imag


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, nearest rank (no interpolation, so +-inf values stay sane)."""
    return sorted_values[round(q * (len(sorted_values) - 1))]


def bootstrap_drop(dense: Sequence[float], compressed: Sequence[float], *, higher_is_better: bool = True,
                   n_boot: int = 2000, seed: int = 0, figure: Callable[[float], float] | None = None) -> list[float]:
    """Paired bootstrap of the relative drop: the sorted drops of ``n_boot`` resamples.

    Each resample draws n item indices with replacement and uses the SAME indices for dense and
    compressed, then takes :func:`relative_drop` of the two means (of ``figure`` of each mean, when the
    task's figure is not the mean itself: perplexity is exp of the mean log-loss). A resample whose dense mean is 0
    gives 0.0 or +-inf (see :func:`relative_drop`); those sort to the ends and the quantile functions
    below handle them. Reproducible for a given ``seed``; the global random state is not touched.
    """
    dense, compressed = _paired(dense, compressed)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    n = len(dense)
    rng = random.Random(seed)
    f = figure or (lambda mean: mean)
    return sorted(relative_drop(f(sum_d / n), f(sum_c / n), higher_is_better)
                  for sum_d, sum_c in _resampled_sums(dense, compressed, n_boot, rng))


def drop_interval(dense: Sequence[float], compressed: Sequence[float], *, higher_is_better: bool = True,
                  level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                  figure: Callable[[float], float] | None = None) -> tuple[float, float]:
    """Two-sided percentile bootstrap interval of the relative drop at ``level`` (0.95 = 95 %)."""
    _check_fraction("level", level)
    drops = bootstrap_drop(dense, compressed, higher_is_better=higher_is_better, n_boot=n_boot, seed=seed,
                           figure=figure)
    tail = (1 - level) / 2
    return _quantile(drops, tail), _quantile(drops, 1 - tail)


def drop_lower_bound(dense: Sequence[float], compressed: Sequence[float], *, higher_is_better: bool = True,
                     confidence: float = 0.95, n_boot: int = 2000, seed: int = 0,
                     figure: Callable[[float], float] | None = None) -> float:
    """One-sided lower confidence bound of the relative drop: the (1 - confidence) bootstrap quantile.

    The gate's ``ci`` mode fails a case only when this lower bound exceeds the tolerance, i.e. when
    "the drop is beyond tolerance with 95 % confidence" (at the default ``confidence=0.95``). A drop
    that is merely estimated above tolerance, but could plausibly be within it, does not fail.

    The bound is one-sided because the question asked is one-directional: is the loss larger than
    allowed? Gains never fail a case. Spending all of the 5 % error on that one side gives more power
    (real losses are caught more often) than the lower end of a two-sided 95 % interval, which would
    only allow 2.5 % false failures, i.e. the same false-failure rate as a 97.5 % one-sided bound.
    """
    _check_fraction("confidence", confidence)
    drops = bootstrap_drop(dense, compressed, higher_is_better=higher_is_better, n_boot=n_boot, seed=seed,
                           figure=figure)
    return _quantile(drops, 1 - confidence)


def _is_binary(values: Sequence[float]) -> bool:
    return all(v == 0 or v == 1 for v in values)


def mcnemar_exact(dense: Sequence[float], compressed: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 scores.

    Only discordant items count: b = dense right and compressed wrong, c = the reverse. Under "no
    difference" each discordant item goes either way with probability 1/2, so
    p = min(1, 2 * sum_{k=0}^{min(b,c)} C(b+c, k) / 2^(b+c)), and p = 1.0 when b + c == 0.
    Computed with exact integers. Raises ValueError when a score is not 0 or 1.
    """
    dense, compressed = _paired(dense, compressed)
    if not (_is_binary(dense) and _is_binary(compressed)):
        raise ValueError("mcnemar_exact needs 0/1 scores")
    b = sum(1 for d, c in zip(dense, compressed) if d == 1 and c == 0)
    c = sum(1 for d, c in zip(dense, compressed) if d == 0 and c == 1)
    discordant = b + c
    if discordant == 0:
        return 1.0
    tail, term = 0, 1  # term = C(discordant, k)
    for k in range(min(b, c) + 1):
        tail += term
        term = term * (discordant - k) // (k + 1)
    return min(1.0, 2 * tail / 2**discordant)  # int / int is correctly rounded, however large


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
    return lo, [math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
                for k in range(lo, hi + 1)]


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


def significantly_above_floor(dense: Sequence[float], floor: float | Sequence[float], higher_is_better: bool = True,
                              alpha: float = 0.05, seed: int = 0) -> bool:
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
