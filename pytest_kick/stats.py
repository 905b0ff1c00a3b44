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
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

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
    pmf = math.exp(
        math.lgamma(n + 1)
        - math.lgamma(mode + 1)
        - math.lgamma(n - mode + 1)
        + mode * math.log(p)
        + (n - mode) * math.log(q)
    )
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


def _resampled_sums(
    dense: list[float], compressed: list[float], n_boot: int, rng: random.Random
) -> Iterator[tuple[float, float]]:
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


def bootstrap_drop(
    dense: Sequence[float],
    compressed: Sequence[float],
    *,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
    figure: Callable[[float], float] | None = None,
) -> list[float]:
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
    return sorted(
        relative_drop(f(sum_d / n), f(sum_c / n), higher_is_better)
        for sum_d, sum_c in _resampled_sums(dense, compressed, n_boot, rng)
    )


def drop_interval(
    dense: Sequence[float],
    compressed: Sequence[float],
    *,
    higher_is_better: bool = True,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    figure: Callable[[float], float] | None = None,
) -> tuple[float, float]:
    """Two-sided percentile bootstrap interval of the relative drop at ``level`` (0.95 = 95 %)."""
    _check_fraction("level", level)
    drops = bootstrap_drop(
        dense, compressed, higher_is_better=higher_is_better, n_boot=n_boot, seed=seed, figure=figure
    )
    tail = (1 - level) / 2
    return _quantile(drops, tail), _quantile(drops, 1 - tail)


def drop_lower_bound(
    dense: Sequence[float],
    compressed: Sequence[float],
    *,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    figure: Callable[[float], float] | None = None,
) -> float:
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
    drops = bootstrap_drop(
        dense, compressed, higher_is_better=higher_is_better, n_boot=n_boot, seed=seed, figure=figure
    )
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
