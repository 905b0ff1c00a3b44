"""The matching verdict."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.gate import INCONCLUSIVE, MATCHING, NOT_MATCHING, Tolerance, flips, judge

FIVE = Tolerance(0.05, "relative")


def verdict(dense, compressed, tolerance=FIVE, **kw):
    return judge(task="factoid_qa", label="magnitude@0.50", dense=dense, compressed=compressed,
                 tolerance=tolerance, **kw)


def test_relative_tolerance_is_llm_kick_matching():
    dense = [1.0] * 20 + [0.0] * 80  # 0.20
    at_threshold = [1.0] * 19 + [0.0] * 81  # 0.19 = 0.95 x 0.20
    below = [1.0] * 18 + [0.0] * 82
    assert verdict(dense, at_threshold).status == MATCHING
    v = verdict(dense, below)
    assert v.status == NOT_MATCHING
    assert v.threshold == pytest.approx(0.19)
    assert v.drop == pytest.approx(0.10)
    assert (v.lost, v.kept, v.gained) == (2, 18, 0)


def test_absolute_tolerance():
    dense = [1.0] * 50 + [0.0] * 50
    assert verdict(dense, [1.0] * 47 + [0.0] * 53, Tolerance(0.03, "absolute")).status == MATCHING
    assert verdict(dense, [1.0] * 46 + [0.0] * 54, Tolerance(0.03, "absolute")).status == NOT_MATCHING


def test_dense_at_floor_is_inconclusive_never_matching():
    v = verdict([0.0] * 10, [0.0] * 10)
    assert v.status == INCONCLUSIVE and not v.passed
    assert "floor" in v.message
    assert verdict([1, 0, 0, 0], [0, 0, 0, 0], floor=0.25).status == INCONCLUSIVE


def test_lower_is_better_metrics():
    dense = [10.0, 10.0]
    assert verdict(dense, [10.4, 10.4], higher_is_better=False, floor=float("inf")).status == MATCHING
    v = verdict(dense, [11.0, 11.0], higher_is_better=False, floor=float("inf"))
    assert v.status == NOT_MATCHING and v.drop == pytest.approx(0.10)


def test_message_names_everything_a_person_needs():
    v = verdict([1.0] * 8 + [0.0] * 2, [1.0] * 5 + [0.0] * 4 + [1.0])
    assert v.message.splitlines() == [
        "factoid_qa: magnitude@0.50 is not matching dense (tolerance 5% relative)",
        "  dense 0.800 (n=10)  compressed 0.600  drop 25.0%  threshold 0.760",
        "  3 answers lost, 5 kept, 1 gained",
    ]


def test_unpaired_vectors_are_rejected():
    with pytest.raises(ValueError):
        verdict([1.0, 0.0], [1.0])


scores = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=60)


@given(scores, st.integers(0, 60), st.floats(0, 0.5))
def test_verdict_is_monotone_in_the_drop(dense, extra_losses, tol):
    """Losing more answers never turns a failing case into a passing one."""
    tolerance = Tolerance(tol, "relative")
    compressed = list(dense)
    previous_pass = True
    for i in [i for i, d in enumerate(dense) if d == 1.0][:extra_losses] + [None]:
        status = verdict(dense, compressed, tolerance).status
        passed = status == MATCHING
        assert not (passed and not previous_pass)
        previous_pass = passed if status != INCONCLUSIVE else previous_pass
        if i is not None:
            compressed[i] = 0.0


@given(scores)
def test_flips_partition_the_changed_items(dense):
    compressed = [1.0 - d if k % 3 == 0 else d for k, d in enumerate(dense)]
    lost, kept, gained = flips(dense, compressed)
    assert lost + gained == sum(1 for d, c in zip(dense, compressed) if d != c)
    assert kept == sum(1 for d, c in zip(dense, compressed) if d == c == 1.0)
