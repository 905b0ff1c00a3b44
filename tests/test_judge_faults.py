"""The fault gaps of the openai judge, against the loopback server: unreadable replies are never cached as
answers, failed requests count against the first-ask rate, --kick-judge-timeout / --kick-judge-retries bound a
hung judge."""
# ruff: noqa: F811  (the tests take test_judge_http's fixtures, imported below, as parameters)

import math

import pytest

pytest.importorskip("openai", reason="the judge tests need the openai package: pip install 'pytest-kick[judge]'")

from test_judge_http import Rig, question, secret, server  # noqa: E402, F401  (the loopback judge and its key)


def test_an_unreadable_reply_is_not_cached_so_a_rerun_asks_a_healthy_judge_again(server, secret, tmp_path):
    cases = [question(0, "garbage,garbage,garbage,valid")]  # three unreadable replies, then a healthy judge
    first = Rig(server, tmp_path / "cache", retries=0)
    assert math.isnan(first.run(cases)[0])
    assert not list((tmp_path / "cache").rglob("*.json"))  # nothing read, nothing cached
    again = Rig(server, tmp_path / "cache", retries=0)
    assert again.run(cases) == [6.0] and again.judge.stats.requests == 2  # one ask per order, both read
    third = Rig(server, tmp_path / "cache", retries=0)
    assert third.run(cases) == [6.0] and third.judge.stats.requests == 0 and third.judge.stats.cache_hits == 2


def test_failed_requests_count_against_the_first_ask_rate(server, secret, tmp_path):
    from pytest_kick.record import CaseRecord
    from pytest_kick.report_judge import judge_lines

    rig = Rig(server, tmp_path / "cache", retries=0)
    rig.run([question(0, "500"), question(1, "valid")])
    stats = rig.judge.stats
    assert (stats.asks, stats.unreadable_first, stats.failed_asks) == (4, 2, 2)
    spent = {**stats.as_dict(), "items": 2, "item_errors": 1, "judge": "openai:judge-model"}
    line = judge_lines([CaseRecord(task="instruction", model="m", compressor="dense", judge=spent)])[0]
    assert "50% of 4 judgments read at the first ask" in line


def test_timeout_and_retries_bound_a_hung_judge(server, secret, tmp_path):
    rig = Rig(server, tmp_path / "cache", timeout=0.2, retries=1)
    assert math.isnan(rig.run([question(0, "slow")])[0])
    assert rig.scorer.judgment(*question(0, "slow")).error == "judge request failed: timed out after 0.2 s (2 attempts)"
    assert rig.judge.stats.requests == server.requests == 2 * 2  # 2 attempts x 2 orders, no more
