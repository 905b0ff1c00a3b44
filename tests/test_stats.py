"""Paired statistics: bootstrap of the relative drop, McNemar, the binomial test against chance."""

import math
import random
import statistics
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_kick import gate, stats
from pytest_kick.chance import binomial_above_chance, poisson_binomial_tail, significantly_above_floor
from pytest_kick.stats import bootstrap_drop, drop_interval, drop_lower_bound, mcnemar_exact, relative_drop


def pairs(n_right_right, n_lost, n_gained, n_wrong_wrong):
    """Paired 0/1 vectors from the four cell counts (dense, compressed)."""
    dense = [1] * (n_right_right + n_lost) + [0] * (n_gained + n_wrong_wrong)
    compressed = [1] * n_right_right + [0] * n_lost + [1] * n_gained + [0] * n_wrong_wrong
    return dense, compressed


def mean(values):
    return sum(values) / len(values)


paired_binary = st.integers(20, 200).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n), st.lists(st.integers(0, 1), min_size=n, max_size=n)
    )
)


def test_relative_drop_is_the_gates():
    assert relative_drop(0.4, 0.36) == gate.relative_drop(0.4, 0.36) == pytest.approx(0.10)
    assert relative_drop(10.0, 11.0, higher_is_better=False) == pytest.approx(0.10)
    assert relative_drop(0.0, 0.0) == 0.0 and relative_drop(0.0, 0.1) == -math.inf


@settings(max_examples=40, deadline=None)
@given(paired_binary)
def test_interval_contains_point_estimate_and_lower_bound_is_below_it(vectors):
    dense, compressed = vectors
    assume(sum(dense) > 0)
    point = relative_drop(mean(dense), mean(compressed))
    low, high = drop_interval(dense, compressed, n_boot=400)
    assert low <= point <= high
    assert drop_lower_bound(dense, compressed, n_boot=400) <= point


def test_one_sided_bound_is_tighter_than_the_two_sided_interval():
    dense, compressed = pairs(150, 25, 5, 320)
    low, high = drop_interval(dense, compressed, level=0.95)
    bound = drop_lower_bound(dense, compressed, confidence=0.95)
    assert low <= bound < relative_drop(mean(dense), mean(compressed)) < high


def test_bootstrap_is_reproducible_under_a_seed_and_leaves_global_random_alone():
    dense, compressed = pairs(60, 15, 5, 120)
    random.seed(12345)
    state = random.getstate()
    first = bootstrap_drop(dense, compressed, n_boot=500, seed=7)
    assert random.getstate() == state
    assert first == bootstrap_drop(dense, compressed, n_boot=500, seed=7)
    assert first != bootstrap_drop(dense, compressed, n_boot=500, seed=8)
    assert first == sorted(first) and len(first) == 500


def test_continuous_scores_are_reproducible_too():
    rng = random.Random(0)
    dense = [rng.random() for _ in range(100)]
    compressed = [d - 0.1 * rng.random() for d in dense]
    drops = bootstrap_drop(dense, compressed, n_boot=300, seed=3)
    assert drops == bootstrap_drop(dense, compressed, n_boot=300, seed=3)
    assert drops != bootstrap_drop(dense, compressed, n_boot=300, seed=4)
    low, high = drop_interval(dense, compressed, n_boot=300)
    assert 0 < low <= relative_drop(mean(dense), mean(compressed)) <= high


def test_grouped_and_item_by_item_resampling_agree(monkeypatch):
    """0/1 scores are resampled as a multinomial over the 4 cells; it must match drawing items."""
    dense, compressed = pairs(108, 12, 3, 177)
    grouped = bootstrap_drop(dense, compressed, n_boot=2000, seed=1)
    monkeypatch.setattr(stats, "_FEW_DISTINCT_PAIRS", 0)
    by_item = bootstrap_drop(dense, compressed, n_boot=2000, seed=1)
    for q in (0.05, 0.5, 0.95):
        assert stats._quantile(grouped, q) == pytest.approx(stats._quantile(by_item, q), abs=0.01)


def test_binomial_sampler_has_the_right_moments():
    rng = random.Random(0)
    for n, p in ((1000, 0.3), (7, 0.02), (50, 0.97)):
        draws = [stats._binomial(rng, n, p) for _ in range(20000)]
        assert all(0 <= x <= n for x in draws)
        sd = math.sqrt(n * p * (1 - p))
        assert statistics.fmean(draws) == pytest.approx(n * p, abs=5 * sd / math.sqrt(20000))
        assert statistics.variance(draws) == pytest.approx(sd * sd, rel=0.05)


def test_identical_models_have_no_drop():
    dense = [1, 0, 1, 1, 0] * 20
    assert drop_interval(dense, dense) == (0.0, 0.0)
    assert drop_lower_bound(dense, dense) == 0.0


def test_dense_mean_zero_does_not_crash():
    drops = bootstrap_drop([0] * 10, [0] * 9 + [1], n_boot=200)
    assert not any(math.isnan(x) for x in drops)
    assert set(drops) <= {0.0, -math.inf}
    assert drop_lower_bound([0] * 10, [0] * 9 + [1]) == -math.inf
    assert drop_interval([0] * 10, [0] * 10) == (0.0, 0.0)
    low, high = drop_interval([0] * 9 + [1], [0] * 10)  # one item lost; some resamples miss it
    assert (low, high) == (0.0, 1.0)


@pytest.mark.parametrize("fn", [bootstrap_drop, drop_interval, drop_lower_bound, mcnemar_exact])
def test_bad_vectors_are_rejected(fn):
    with pytest.raises(ValueError):
        fn([], [])
    with pytest.raises(ValueError):
        fn([1, 0, 1], [1, 0])


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        bootstrap_drop([1, 0], [1, 1], n_boot=0)
    with pytest.raises(ValueError):
        drop_interval([1, 0], [1, 1], level=1.0)
    with pytest.raises(ValueError):
        drop_lower_bound([1, 0], [1, 1], confidence=0.0)
    with pytest.raises(ValueError):
        significantly_above_floor([], 0.25)
    with pytest.raises(ValueError):
        binomial_above_chance(11, 10, 0.25)
    with pytest.raises(ValueError):
        binomial_above_chance(3, 10, 1.5)


@pytest.mark.parametrize(
    "b, c, expected",
    [
        (10, 0, 2 / 1024),
        (0, 10, 2 / 1024),
        (5, 5, 1.0),
        (1, 0, 1.0),
        (0, 0, 1.0),
        (6, 1, 2 * (1 + 7) / 128),
        (20, 5, 2 * sum(math.comb(25, k) for k in range(6)) / 2**25),
    ],
)
def test_mcnemar_hand_computed(b, c, expected):
    dense, compressed = pairs(30, b, c, 40)  # concordant items do not matter
    assert mcnemar_exact(dense, compressed) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_needs_zero_one_scores():
    with pytest.raises(ValueError):
        mcnemar_exact([1, 0.5], [1, 0])
    assert mcnemar_exact([True, 1.0], [False, 0]) == 0.5  # 0/1 in any numeric spelling: b=2, c=0


def test_binomial_above_chance_hand_cases():
    for chance in (0.0, 0.1, 0.25, 0.5):
        assert not binomial_above_chance(0, 100, chance)
    assert binomial_above_chance(40, 100, 0.25)
    assert not binomial_above_chance(25, 100, 0.25)
    assert binomial_above_chance(1, 100, 0.0)
    assert not binomial_above_chance(100, 100, 1.0)
    assert binomial_above_chance(5, 5, 0.5)  # 1/32 < 0.05
    assert not binomial_above_chance(4, 4, 0.5)  # 1/16


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
    st.sampled_from([Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(4, 5)]),
)
def test_binomial_above_chance_matches_exact_fractions(n_s, chance):
    n, s = n_s
    tail = sum(math.comb(n, k) * chance**k * (1 - chance) ** (n - k) for k in range(s, n + 1))
    assume(abs(tail - Fraction(1, 20)) > Fraction(1, 10**9))  # no float ties at alpha
    assert binomial_above_chance(s, n, float(chance)) == (tail < Fraction(1, 20))


def test_binomial_above_chance_for_large_n():
    assert not binomial_above_chance(3800, 15000, 0.25)  # z ~ 0.9
    assert binomial_above_chance(3900, 15000, 0.25)  # z ~ 2.5
    assert binomial_above_chance(20000, 20000, 0.5)  # 2^-20000 underflows to 0, still True
    assert not binomial_above_chance(1, 20000, 0.5)


def test_significantly_above_floor_zero_one():
    assert significantly_above_floor([1] * 40 + [0] * 60, 0.25)
    assert not significantly_above_floor([1] * 25 + [0] * 75, 0.25)
    assert significantly_above_floor([1] + [0] * 99, 0.0)
    assert not significantly_above_floor([0] * 100, 0.0)
    # lower-is-better 0/1 (an error indicator): 10 errors in 100 is well below a 25 % floor
    assert significantly_above_floor([1] * 10 + [0] * 90, 0.25, higher_is_better=False)
    assert not significantly_above_floor([1] * 25 + [0] * 75, 0.25, higher_is_better=False)


def test_significantly_above_floor_continuous():
    rng = random.Random(0)
    scores = [min(1.0, max(0.0, rng.gauss(0.6, 0.2))) for _ in range(200)]
    assert significantly_above_floor(scores, 0.3)
    assert not significantly_above_floor(scores, 0.6)
    perplexities = [rng.gauss(10.0, 1.0) for _ in range(200)]
    assert significantly_above_floor(perplexities, 20.0, higher_is_better=False)
    assert significantly_above_floor(perplexities, math.inf, higher_is_better=False)
    assert not significantly_above_floor(perplexities, 10.0, higher_is_better=False)
    assert significantly_above_floor(scores, 0.57, seed=1) == significantly_above_floor(scores, 0.57, seed=1)


# --- per-item chance levels (multiple choice with 3, 4 and 5 options in one set) -------------------------


def exact_poisson_binomial_tails(chances) -> list[Fraction]:
    """[P(X >= s) for s = 0 .. n], X a sum of Bernoulli(chances[i]), by the textbook dynamic programme in
    fractions."""
    pmf = [Fraction(1)]
    for p in chances:
        pmf = [(pmf[k] if k < len(pmf) else 0) * (1 - p) + (pmf[k - 1] * p if k else 0) for k in range(len(pmf) + 1)]
    tails, total = [], Fraction(0)
    for value in reversed(pmf):
        total += value
        tails.append(total)
    return tails[::-1]


def exact_poisson_binomial_tail(successes, chances) -> Fraction:
    return exact_poisson_binomial_tails(chances)[successes]


MIXED = [Fraction(1, 3), Fraction(1, 4), Fraction(1, 5)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(MIXED + [Fraction(0), Fraction(1), Fraction(1, 2)]), min_size=1, max_size=40), st.data()
)
def test_poisson_binomial_tail_matches_the_exact_tail(chances, data):
    successes = data.draw(st.integers(0, len(chances)))
    exact = exact_poisson_binomial_tail(successes, chances)
    assert poisson_binomial_tail(successes, [float(c) for c in chances]) == pytest.approx(float(exact), abs=1e-12)
    assume(abs(exact - Fraction(1, 20)) > Fraction(1, 10**9))
    assert binomial_above_chance(successes, len(chances), [float(c) for c in chances]) == (exact < Fraction(1, 20))


def test_mixed_choice_counts_need_their_own_chance_levels():
    """90 items, 30 each with 3, 4 and 5 choices: one level of 0.25 for all of them calls a score
    significant that the items' own levels (mean 0.261) do not."""
    levels = [Fraction(1, 3)] * 30 + [Fraction(1, 4)] * 30 + [Fraction(1, 5)] * 30
    own, one = exact_poisson_binomial_tails(levels), exact_poisson_binomial_tails([Fraction(1, 4)] * 90)
    differ = [s for s in range(91) if (own[s] < Fraction(1, 20)) != (one[s] < Fraction(1, 20))]
    assert differ == [30]  # the two tests disagree at 30 right, so the levels matter
    for s in differ:
        assert binomial_above_chance(s, 90, [float(p) for p in levels]) is False
        assert binomial_above_chance(s, 90, 0.25) is True
        scores = [1] * s + [0] * (90 - s)
        assert not significantly_above_floor(scores, [float(p) for p in levels])
        assert significantly_above_floor(scores, 0.25)


def test_per_item_levels_that_are_all_equal_are_the_binomial_test():
    exact = exact_poisson_binomial_tails([Fraction(1, 4)] * 40)
    for s in range(0, 41):
        assert binomial_above_chance(s, 40, [0.25] * 40) == binomial_above_chance(s, 40, 0.25)
        assert poisson_binomial_tail(s, [0.25] * 40) == pytest.approx(float(exact[s]), abs=1e-12)


def test_poisson_binomial_tail_for_a_large_mixed_set():
    levels = [1 / 3, 1 / 4, 1 / 5] * 5000
    mean, sd = sum(levels), math.sqrt(sum(p * (1 - p) for p in levels))  # 3916.7 and 53.4 items
    assert poisson_binomial_tail(0, levels) == pytest.approx(1.0)
    assert poisson_binomial_tail(round(mean), levels) == pytest.approx(0.5, abs=0.01)
    assert poisson_binomial_tail(round(mean + 2 * sd), levels) == pytest.approx(0.023, abs=0.003)
    assert not binomial_above_chance(round(mean + sd), 15000, levels)  # z ~ 1: p ~ 0.16
    assert binomial_above_chance(round(mean + 2.5 * sd), 15000, levels)  # z ~ 2.5: p ~ 0.006


def test_chance_levels_must_fit_the_items():
    with pytest.raises(ValueError, match="3 chance levels for 4 items"):
        binomial_above_chance(1, 4, [0.25, 0.25, 0.25])
    with pytest.raises(ValueError, match="chance must be between 0 and 1"):
        poisson_binomial_tail(1, [0.25, 1.5])
