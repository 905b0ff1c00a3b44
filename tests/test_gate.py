"""The matching verdict."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.gate import Tolerance, flips, judge
from pytest_kick.record import Verdict

MATCHING, NOT_MATCHING, INCONCLUSIVE = Verdict.MATCHING, Verdict.NOT_MATCHING, Verdict.INCONCLUSIVE

FIVE = Tolerance(0.05, "relative")


def verdict(dense, compressed, tolerance=FIVE, **kw):
    return judge(
        task="factoid_qa", label="magnitude@0.50", dense=dense, compressed=compressed, tolerance=tolerance, **kw
    )


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
    lines = v.message.splitlines()
    assert lines[:3] == [
        "factoid_qa: magnitude@0.50 is not matching dense (tolerance 5% relative)",
        "  dense 0.800 (n=10)  compressed 0.600  drop 25.0%  threshold 0.760",
        "  3 answers lost, 5 kept, 1 gained",
    ]
    assert lines[3].startswith("  95% CI of drop [") and "McNemar p=0.625 (--kick-stat point)" in lines[3]
    assert lines[4].startswith("  note: n=10 cannot resolve a 5% relative drop on factoid_qa")


def test_ci_mode_fails_only_a_drop_beyond_tolerance_with_confidence():
    dense = [1.0] * 300 + [0.0] * 200  # 0.60
    small_loss = [1.0] * 282 + [0.0] * 218  # drop 6 %: beyond 5 % as a point, not with confidence
    big_loss = [1.0] * 240 + [0.0] * 260  # drop 20 %
    assert verdict(dense, small_loss).status == NOT_MATCHING
    assert verdict(dense, small_loss, stat="ci").status == MATCHING
    v = verdict(dense, big_loss, stat="ci")
    assert v.status == NOT_MATCHING and v.drop_lower_bound > 0.05
    assert v.drop_low <= v.drop <= v.drop_high
    assert v.p_value < 1e-10


def test_dense_not_significantly_above_chance_is_inconclusive():
    # 4-way multiple choice: 28 of 100 right is not significantly better than 25 %
    assert verdict([1.0] * 28 + [0.0] * 72, [0.0] * 100, floor=0.25).status == INCONCLUSIVE
    assert verdict([1.0] * 45 + [0.0] * 55, [0.0] * 100, floor=0.25).status == NOT_MATCHING


def test_unpaired_vectors_are_rejected():
    with pytest.raises(ValueError):
        verdict([1.0, 0.0], [1.0])


scores = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=60)


@settings(deadline=None, max_examples=40)
@given(scores, st.integers(0, 60), st.floats(0, 0.5), st.sampled_from(["point", "ci"]))
def test_verdict_is_monotone_in_the_drop(dense, extra_losses, tol, stat):
    """Losing more answers never turns a failing case into a passing one (either --kick-stat)."""
    tolerance = Tolerance(tol, "relative")
    compressed = list(dense)
    previous_pass = True
    for i in [i for i, d in enumerate(dense) if d == 1.0][:extra_losses] + [None]:
        status = verdict(dense, compressed, tolerance, stat=stat).status
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


def planted(n, dense_acc, drop, gain, rng):
    """Paired 0/1 vectors whose expected relative drop is ``drop`` (gains on dense-wrong items included)."""
    keep = 1 - drop - gain * (1 - dense_acc) / dense_acc
    dense = [1.0 if rng.random() < dense_acc else 0.0 for _ in range(n)]
    compressed = [float(rng.random() < (keep if d else gain)) for d in dense]
    return dense, compressed


def test_planted_regressions_at_n_500_point_rule():
    """n=500, dense 40 %: a true drop of 2 x tolerance is caught >= 90 % of the time, a true drop of 0
    passes >= 95 % of the time (benchmarks/gate_power.py prints the full table, both rules)."""
    import random

    rng = random.Random(0)
    trials = 100

    def fail_rate(drop):
        fails = 0
        for t in range(trials):
            dense, compressed = planted(500, 0.4, drop, 0.02, rng)
            fails += verdict(dense, compressed, seed=t).status == NOT_MATCHING
        return fails / trials

    assert fail_rate(0.10) >= 0.9
    assert fail_rate(0.0) <= 0.05


def test_per_item_chance_levels_decide_inconclusive():
    """A mixed 3/4/5-choice set: 30 of 90 right (0.333) is significant against one level of 0.25, not against
    the items' own levels (mean 0.261); the message prints the levels rounded."""
    from pytest_kick.gate import chance_text, informative

    levels = [1 / 3] * 30 + [1 / 4] * 30 + [1 / 5] * 30
    dense = [1.0] * 30 + [0.0] * 60
    assert informative(dense, 0.25) and not informative(dense, levels)
    v = verdict(dense, dense, floor=levels)
    assert v.status == INCONCLUSIVE
    assert "floor (0.261 (mean of per-item chance 0.2-0.333))" in v.message
    assert verdict(dense, dense, floor=0.25).status == MATCHING
    assert chance_text(1 / 3) == "0.333" and chance_text([0.25] * 4) == "0.25" and chance_text(None) == "none"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([3, 4, 5]), min_size=5, max_size=60), st.data())
def test_more_right_answers_never_make_dense_less_informative(choices, data):
    """Monotone in the score, whatever mix of 3-, 4- and 5-choice items carries the right answers."""
    from pytest_kick.gate import informative

    levels = [1 / c for c in choices]
    right = data.draw(st.sets(st.integers(0, len(choices) - 1)))
    extra = data.draw(st.integers(0, len(choices) - 1))
    dense = [1.0 if i in right else 0.0 for i in range(len(choices))]
    more = [1.0 if i in right or i == extra else 0.0 for i in range(len(choices))]
    assert informative(more, levels) or not informative(dense, levels)
