"""The recovered case's report fields, from per-item scores."""

import pytest

from pytest_kick.errors import KickError
from pytest_kick.recover.outcome import gap_closed, outcome, wilson


def test_items_are_regained_still_lost_or_newly_lost():
    dense = [1, 1, 1, 1, 0, 0, 1]
    compressed = [0, 0, 0, 1, 0, 1, 1]
    recovered = [1, 0, 0, 0, 1, 1, 1]
    o = outcome(dense, compressed, recovered, (5 / 7, 3 / 7, 4 / 7))
    assert (o.lost, o.regained, o.still_lost, o.newly_lost) == (3, 1, 2, 1)
    assert o.regained_share == pytest.approx(1 / 3)
    assert o.gap_closed == pytest.approx(0.5)
    assert o.latency_overhead is None
    assert "1 of 3 lost items regained" in o.reading() and "1 newly lost" in o.reading()


def test_lower_is_better_scores():
    """Perplexity per item: compressed higher is lost; recovered back at or under dense is regained."""
    o = outcome(
        [10.0, 20.0], [15.0, 25.0], [10.0, 22.0], (15.0, 20.0, 16.0), higher_is_better=False, seconds=(0.5, 0.6)
    )
    assert (o.lost, o.regained, o.still_lost, o.newly_lost) == (2, 1, 1, 0)
    assert o.gap_closed == pytest.approx(0.8)
    assert o.latency_overhead == pytest.approx(0.2)


def test_gap_closed_edges():
    assert gap_closed(0.4, 0.3, 0.4) == pytest.approx(1.0)
    assert gap_closed(0.4, 0.3, 0.25) == pytest.approx(-0.5)
    assert gap_closed(0.4, 0.4, 0.5) is None


def test_reading_leans_only_outside_the_interval():
    many = outcome([1] * 100, [0] * 100, [1] * 80 + [0] * 20, (1.0, 0.0, 0.8))
    assert "displaced" in many.reading()
    few = outcome([1] * 100, [0] * 100, [1] * 15 + [0] * 85, (1.0, 0.0, 0.15))
    assert "forgotten" in few.reading()
    even = outcome([1] * 10, [0] * 10, [1] * 5 + [0] * 5, (1.0, 0.0, 0.5))
    assert "undecided" in even.reading()
    assert "nothing to recover" in outcome([1], [1], [1], (1.0, 1.0, 1.0)).reading()


def test_wilson_interval_contains_the_share_and_narrows():
    low, high = wilson(30, 100)
    assert low < 0.3 < high
    low2, high2 = wilson(300, 1000)
    assert high2 - low2 < high - low


def test_mismatched_items_are_an_error():
    with pytest.raises(KickError, match="items must be the same"):
        outcome([1, 0], [1], [1, 0], (0.5, 1.0, 0.5))


def test_idp_pool_usage_is_shown_and_a_collapse_is_called_out():
    from pytest_kick.report_recovery import pool_usage

    assert pool_usage(None) == "" and pool_usage({"training": [8], "evaluation": [4]}) == ""  # m = 1: no choice
    spread = pool_usage({"training": [30, 20, 10, 40], "evaluation": [5, 3, 1, 1]})
    assert spread == "; IDP prompt choices 5/3/1/1 (evaluation), 30/20/10/40 (training)"
    collapsed = pool_usage({"training": [100, 0, 0, 0], "evaluation": [19, 1, 0, 0]})
    assert "the pool collapsed: 95% of evaluation inputs chose one prompt; 100% of training inputs" in collapsed
