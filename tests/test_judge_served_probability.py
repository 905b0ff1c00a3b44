"""A served judge's scores read from ``top_logprobs`` (judge/served_probability.py), against the loopback server of
judge_server.py through the real ``openai`` client."""

import math

import pytest

pytest.importorskip("openai", reason="the judge tests need the openai package: pip install 'pytest-kick[judge]'")

from judge_server import Server  # noqa: E402
from test_judge_http import KEY_ENV, question  # noqa: E402

from pytest_kick.judge.cache import ReplyCache  # noqa: E402
from pytest_kick.judge.protocols import KickInstruction, MTBenchSingle  # noqa: E402
from pytest_kick.judge.runner import Judge  # noqa: E402
from pytest_kick.judge.scorer import JudgeScorer  # noqa: E402
from pytest_kick.judge.served_probability import LogprobBackend, ServedProbabilityJudge, slot_distribution  # noqa: E402


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test")
    running = Server().start()
    yield running
    running.stop()


def scorer(server, cache_dir, family):
    backend = LogprobBackend(
        "judge-model", url=server.url, key_env=KEY_ENV, concurrency=2, retries=1, sleep=lambda s: 0
    )
    return JudgeScorer(ServedProbabilityJudge(Judge(backend, ReplyCache(cache_dir), reasks=2)), family)


def test_scores_are_read_from_top_logprobs_and_a_rerun_asks_nothing(server, tmp_path):
    cases = [question(n, "logprobs") for n in range(3)]
    judge = scorer(server, tmp_path, KickInstruction())
    items, replies = [c[0] for c in cases], [c[1] for c in cases]
    judgments = judge.prepare(items, replies)
    # the fair verdict writes "6 9" / "9 6"; the server's distributions make 6 read as 5.8 and 9 as 8.6
    assert [j.score for j in judgments] == pytest.approx([5.8] * 3)
    assert [j.figures["judge_reference"] for j in judgments] == pytest.approx([8.6] * 3)
    assert [j.figures["judge_argmax"] for j in judgments] == [6.0] * 3
    assert set(server.asked_logprobs) == {(True, 20)}  # every request asked for the alternatives
    assert server.requests == 6 and judge.judge.stats.requests == 6
    assert "scores read from" not in judgments[0].explanation  # a served judge's own words
    again = scorer(server, tmp_path, KickInstruction())
    assert [j.score for j in again.prepare(items, replies)] == pytest.approx([5.8] * 3)
    assert server.requests == 6 and again.judge.stats.requests == 0 and again.judge.stats.cache_hits == 6


def test_without_top_logprobs_the_written_scores_are_kept(server, tmp_path):
    judge = scorer(server, tmp_path, MTBenchSingle())
    item, replies = question(1, "valid")
    assert judge.prepare([item], [replies])[0].score == 6.0  # "Rating: [[6]]", no distribution to read
    assert "judge_argmax" not in judge.figures(item, replies)


def test_an_unreadable_reply_is_asked_again_by_the_text_judge_not_twice(server, tmp_path):
    judge = scorer(server, tmp_path, MTBenchSingle())
    item, replies = question(2, "garbage,logprobs")
    (judgment,) = judge.prepare([item], [replies])
    assert judgment.score == 6.0  # read as text: the re-ask is the text judge's
    assert server.steps == ["garbage", "logprobs"]  # the unreadable first reply was not sent again
    stats = judge.judge.stats
    assert stats.asks == 1 and stats.unreadable_first == 1 and stats.reasks == 1


def test_a_ten_written_as_two_tokens():
    tokens = (
        ("Rating: [[", (("Rating: [[", 0.0),)),
        ("1", (("1", math.log(0.6)), ("2", math.log(0.4)))),
        ("0", (("0", math.log(0.8)), ("]", math.log(0.2)))),
        ("]]", (("]]", 0.0),)),
    )
    probs = slot_distribution(tokens, len("Rating: [["))
    assert probs[9] == pytest.approx(0.48) and probs[0] == pytest.approx(0.12) and probs[1] == pytest.approx(0.4)
