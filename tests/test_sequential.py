"""The sequential gate's decision (pytest_kick/sequential.py): its guarantees as properties, its error rate on a
small seeded simulation, and the gate's verdict built on it."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick import gate, sequential
from pytest_kick.record import Verdict

RELATIVE = sequential.Boundary(0.05, True, True, 0.0, 1.0)
ABSOLUTE = sequential.Boundary(0.03, False, True, 0.0, 1.0)
LOWER = sequential.Boundary(0.05, True, False, 0.0, 1.0)
BOUNDARIES = st.sampled_from([RELATIVE, ABSOLUTE, LOWER])
SCORES = st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0), min_size=1, max_size=300)


def test_looks_double_from_32_and_end_at_the_budget():
    assert sequential.looks(1000) == [32, 64, 128, 256, 512, 1000]
    assert sequential.looks(100) == [32, 64, 100]
    assert sequential.looks(20) == [20]
    assert sequential.looks(64) == [32, 64]


@settings(max_examples=150, deadline=None)
@given(dense=SCORES, boundary=BOUNDARIES)
def test_identical_scores_never_stop_not_matching(dense, boundary):
    decision = sequential.decide(dense, dense, boundary, 0.05)
    assert decision.status != sequential.NOT_MATCHING


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0])), min_size=1, max_size=200),
    which=st.integers(0, 10_000),
)
def test_bounds_are_monotone_in_the_evidence(pairs, which):
    """A compressed item that scores better never lowers either bound of E[Z] (nor raises the drop's bounds)."""
    k = which % len(pairs)
    dense = [d for d, _ in pairs]
    worse = [c for _, c in pairs]
    better = list(worse)
    worse[k], better[k] = 0.0, 1.0
    xs_worse = [_x(RELATIVE, d, c) for d, c in zip(dense, worse)]
    xs_better = [_x(RELATIVE, d, c) for d, c in zip(dense, better)]
    for alpha in (0.01, 0.05):
        low_w, high_w = sequential.Bets(xs_worse).lower(alpha), sequential.Bets(xs_worse).upper(alpha)
        low_b, high_b = sequential.Bets(xs_better).lower(alpha), sequential.Bets(xs_better).upper(alpha)
        assert low_b >= low_w - 1e-9 and high_b >= high_w - 1e-9
        assert low_w <= high_w + 1e-9


def _x(boundary, dense, compressed):
    low, high = boundary.z_range()
    return (boundary.z(dense, compressed) - low) / (high - low)


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0])), min_size=32, max_size=400),
    more=st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0])), min_size=1, max_size=400),
    boundary=BOUNDARIES,
)
def test_a_decision_reached_is_never_undone_by_more_rounds(pairs, more, boundary):
    budget = len(pairs) + len(more)
    dense, compressed = [d for d, _ in pairs], [c for _, c in pairs]
    early = sequential.decide(dense, compressed, boundary, 0.05, budget)
    later = sequential.decide(dense + [d for d, _ in more], compressed + [c for _, c in more], boundary, 0.05, budget)
    if early.decided:
        assert (later.status, later.used) == (early.status, early.used)


def _simulate(rng, n, dense_acc, drop, gain=0.02):
    keep = 1 - drop - gain * (1 - dense_acc) / dense_acc
    dense = [1.0 if rng.random() < dense_acc else 0.0 for _ in range(n)]
    compressed = [(1.0 if rng.random() < keep else 0.0) if d else (1.0 if rng.random() < gain else 0.0) for d in dense]
    return dense, compressed


def test_seeded_simulation_false_fails_rarely_and_stops_a_large_drop_early():
    """Lossless variants (true drop 0) and variants exactly at the tolerance rarely fail; a 35 % drop is decided
    not matching well before the budget. The rates themselves are benchmarks/gate_power.py's job."""
    rng = random.Random(7)
    trials = 60
    fails_lossless = sum(
        sequential.decide(*_simulate(rng, 500, 0.4, 0.0), RELATIVE, 0.05).status == sequential.NOT_MATCHING
        for _ in range(trials)
    )
    fails_boundary = sum(
        sequential.decide(*_simulate(rng, 500, 0.4, 0.05), RELATIVE, 0.05).status == sequential.NOT_MATCHING
        for _ in range(trials)
    )
    big = [sequential.decide(*_simulate(rng, 1000, 0.4, 0.35), RELATIVE, 0.05) for _ in range(20)]
    assert fails_lossless / trials <= 0.05
    assert fails_boundary / trials <= 0.15  # alpha 0.05, with room for 60 trials' noise
    assert all(d.status == sequential.NOT_MATCHING for d in big)
    assert sum(d.used for d in big) / len(big) <= 300


def _sequential_gate(dense, compressed, **kwargs):
    return gate.judge(
        task="t",
        label="magnitude@0.9",
        dense=dense,
        compressed=compressed,
        tolerance=gate.Tolerance(0.05),
        stat="sequential",
        score_range=(0.0, 1.0),
        **kwargs,
    )


def test_gate_reports_items_used_and_the_bound_at_the_stop():
    rng = random.Random(3)
    dense, compressed = _simulate(rng, 1000, 0.5, 0.6)
    result = _sequential_gate(dense, compressed, budget=1000)
    assert result.status == Verdict.NOT_MATCHING
    assert result.items_used < 1000 and result.budget == 1000
    assert result.bound_low > 0.05  # the drop shown beyond tolerance
    assert f"not matching shown on {result.items_used} of 1000 items: drop >=" in result.message


def test_undecided_names_the_smallest_drop_the_budget_could_show():
    dense = [1.0, 0.0] * 20
    compressed = list(dense)
    compressed[0] = 0.0  # one answer lost of 20: neither shown within 5 % nor beyond it at n = 40
    result = _sequential_gate(dense, compressed)
    assert result.status == Verdict.UNDECIDED
    assert result.items_used == 40 and result.smallest_drop > 0.05
    assert "the smallest drop this budget could have shown is about" in result.warning


def test_a_round_short_of_the_budget_is_undecided_without_a_warning():
    """Mid-case (32 of 100 items seen) the gate is undecided so far: no budget-ran-out warning, no smallest drop."""
    dense = [1.0, 0.0] * 16
    result = _sequential_gate(dense, list(dense), budget=100)
    assert result.status == Verdict.UNDECIDED
    assert (result.items_used, result.budget, result.smallest_drop, result.warning) == (32, 100, None, None)


def test_without_a_score_range_the_gate_judges_by_ci():
    result = gate.judge(
        task="perplexity",
        label="x",
        dense=[2.0, 2.1, 1.9],
        compressed=[2.0, 2.1, 1.9],
        tolerance=gate.Tolerance(0.05),
        higher_is_better=False,
        floor=None,
        stat="sequential",
    )
    assert result.stat == "ci" and result.items_used is None


def test_scores_outside_the_range_are_refused():
    with pytest.raises(ValueError, match="outside the task's range"):
        sequential.decide([0.5, 2.0], [0.5, 0.5], RELATIVE, 0.05)
