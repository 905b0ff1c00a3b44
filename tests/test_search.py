"""--kick-search's algorithm: coarse grid, bisection, both readings, cache and budget (no model needed)."""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_kick.search import Axis, bits_axis, search, sparsity_axis


class Curve:
    """A simulated gate over lattice steps: ``matching(k)``; records every level it is asked about."""

    def __init__(self, axis: Axis, matching):
        self.axis, self.matching, self.calls = axis, matching, []

    def __call__(self, level: float):
        k = round(abs(level - self.axis.origin) / self.axis.resolution)
        assert math.isclose(self.axis.level(k), level), f"{level} is not on the lattice"
        self.calls.append(level)
        return self.matching(k), {"step": k, "p": 0.01 * k}


axes = st.builds(
    Axis,
    origin=st.just(0.0),
    limit=st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0]),
    resolution=st.sampled_from([0.01, 0.025, 0.05, 0.1]),
    coarse=st.integers(1, 8),
)


def test_finds_a_planted_boundary_on_a_monotone_score_curve():
    # a score flat to 0.35 sparsity, then falling; matching while within 5 % of dense (0.40, relative)
    axis = sparsity_axis()

    def score(sparsity):
        return 0.40 - 0.8 * max(0.0, sparsity - 0.35)

    curve = Curve(axis, lambda k: (0.40 - score(axis.level(k))) / 0.40 <= 0.05)
    result = search(curve, axis)
    assert result.largest_safe.level == result.largest_matching.level == 0.35
    assert result.largest_safe.next_failing == 0.4 and result.largest_safe.resolved
    assert result.largest_safe.info == {"step": 7, "p": 0.07}  # the gate's info at the reported level
    assert result.complete
    # coarse grid 0.2, 0.4, 0.6, 0.8, 0.9, then bisection of (0.2, 0.4): 0.3, 0.35
    assert curve.calls == [0.2, 0.4, 0.6, 0.8, 0.9, 0.3, 0.35]


@settings(max_examples=200, deadline=None)
@given(axis=axes, data=st.data())
def test_monotone_boundary_found_to_the_resolution(axis, data):
    boundary = data.draw(st.integers(0, axis.steps), label="last matching step")
    curve = Curve(axis, lambda k: k <= boundary)
    result = search(curve, axis)
    expected = axis.level(boundary) if boundary else None
    assert result.largest_safe.level == result.largest_matching.level == expected
    assert result.complete and result.largest_safe.resolved
    if boundary < axis.steps:
        assert result.largest_safe.next_failing == axis.level(boundary + 1)
    assert len(curve.calls) == len(set(curve.calls)) == result.evaluations
    # cost: the coarse grid plus one bisection of one coarse cell
    assert result.evaluations <= len(axis.grid()) + math.ceil(math.log2(axis.coarse)) + 1


@settings(max_examples=200, deadline=None)
@given(axis=axes, data=st.data())
def test_known_levels_are_used_and_never_evaluated_again(axis, data):
    boundary = data.draw(st.integers(0, axis.steps), label="last matching step")
    steps = data.draw(st.sets(st.integers(1, axis.steps), max_size=6), label="known steps")
    known = {axis.level(k): (k <= boundary, {"step": k, "from": "grid"}) for k in steps}
    curve = Curve(axis, lambda k: k <= boundary)
    result = search(curve, axis, known=known)
    assert not set(curve.calls) & set(known)  # a known level is never asked again
    assert result.evaluations == len(curve.calls)
    assert [p.level for p in result.points if p.known] == sorted(known)
    assert result.largest_safe.level == result.largest_matching.level == (axis.level(boundary) if boundary else None)
    if boundary in steps:
        assert result.largest_safe.info == {"step": boundary, "from": "grid"}


def test_known_level_off_the_lattice_is_refused():
    with pytest.raises(ValueError, match="not on the search lattice"):
        search(lambda level: (True, None), sparsity_axis(), known={0.33: (True, None)})


@settings(max_examples=300, deadline=None)
@given(axis=axes, data=st.data())
def test_non_monotone_curve_gives_both_readings(axis, data):
    # matching up to b1, failing on (b1, g1), matching again on [g1, b2], failing above b2
    b1 = data.draw(st.integers(0, axis.steps - 3), label="b1")
    g1 = data.draw(st.integers(b1 + 2, axis.steps - 1), label="g1")
    b2 = data.draw(st.integers(g1, axis.steps), label="b2")
    grid = axis.grid()
    assume(any(b1 < k < g1 for k in grid))  # the gap holds a coarse level: the failure is seen
    assume(any(g1 <= k <= b2 for k in grid))  # the island holds one: the later match is seen
    curve = Curve(axis, lambda k: k <= b1 or g1 <= k <= b2)
    result = search(curve, axis)
    assert result.largest_safe.level == (axis.level(b1) if b1 else None)
    assert result.largest_matching.level == axis.level(b2)
    assert result.largest_matching.info == {"step": b2, "p": pytest.approx(0.01 * b2)}
    assert result.complete
    assert len(curve.calls) == len(set(curve.calls))


@settings(max_examples=300, deadline=None)
@given(axis=axes, data=st.data(), budget=st.one_of(st.none(), st.integers(0, 12)))
def test_readings_always_agree_with_the_evaluated_points(axis, data, budget):
    pattern = data.draw(st.lists(st.booleans(), min_size=axis.steps, max_size=axis.steps), label="pattern")
    curve = Curve(axis, lambda k: pattern[k - 1])
    result = search(curve, axis, budget=budget)
    assert len(curve.calls) == len(set(curve.calls)) == result.evaluations  # never a level twice
    if budget is not None:
        assert result.evaluations <= budget
    seen = {p.level: p.matching for p in result.points}
    matching = [lv for lv, ok in seen.items() if ok]
    assert result.largest_matching.level == (max(matching) if matching else None)
    first_fail = min((lv for lv, ok in seen.items() if not ok), default=math.inf)
    safe = [lv for lv in matching if lv < first_fail]
    assert result.largest_safe.level == (max(safe) if safe else None)
    for reading in (result.largest_matching, result.largest_safe):
        if reading.next_failing is not None:
            assert seen[reading.next_failing] is False
    if budget is None:
        assert result.complete


def test_budget_stops_the_search_and_says_so():
    axis = sparsity_axis()
    curve = Curve(axis, lambda k: k <= 7)
    result = search(curve, axis, budget=3)
    assert len(curve.calls) == 3 and not result.complete
    assert result.largest_safe.level == 0.2 and not result.largest_safe.resolved
    assert "budget exhausted" in result.summary()


def test_bits_axis_runs_downward():
    axis = bits_axis()  # 16 -> 2 bits; fewer bits is more compression
    curve = Curve(axis, lambda k: axis.level(k) >= 4)  # matching down to 4 bits
    result = search(curve, axis)
    assert result.largest_safe.level == result.largest_matching.level == 4.0
    assert result.largest_safe.next_failing == 3.0
    assert curve.calls[:4] == [12.0, 8.0, 4.0, 2.0]
    assert result.summary().startswith("largest matching 4 (3 fails); largest safe 4 (3 fails)")


def test_no_level_matches():
    axis = sparsity_axis()
    result = search(Curve(axis, lambda k: False), axis)
    assert result.largest_safe.level is result.largest_matching.level is None
    assert result.largest_safe.resolved and result.largest_safe.next_failing == 0.05
    assert result.as_dict()["largest_safe"] == {"level": None, "info": None, "resolved": True, "next_failing": 0.05}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"origin": 0.0, "limit": 0.9, "resolution": 0}, "resolution must be positive"),
        ({"origin": 0.0, "limit": 0.01, "resolution": 0.05}, "no level between"),
        ({"origin": 0.0, "limit": 0.9, "coarse": 0}, "coarse must be"),
    ],
)
def test_bad_axis_is_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Axis(**kwargs)
