"""The openai judge against a real HTTP server on 127.0.0.1, through the real ``openai`` client:
retries, error counts, no item dropped, the swapped order, cache hits on rerun, the key kept secret."""

import json
import math
import sys
import uuid
from dataclasses import dataclass

import pytest

pytest.importorskip("openai", reason="the judge tests need the openai package: pip install 'pytest-kick[judge]'")

from judge_server import Server  # noqa: E402

from pytest_kick.errors import KickError  # noqa: E402
from pytest_kick.judge.cache import ReplyCache  # noqa: E402
from pytest_kick.judge.client import OpenAIBackend  # noqa: E402
from pytest_kick.judge.protocols import KickInstruction, KickSummary, MTBenchSingle  # noqa: E402
from pytest_kick.judge.runner import Judge  # noqa: E402
from pytest_kick.judge.scorer import JudgeScorer  # noqa: E402

KEY_ENV = "KICK_TEST_JUDGE_KEY"


@dataclass(frozen=True)
class Question:  # the shape of tasks/instruction.py's items
    id: str
    question: str
    answers: tuple
    turns: tuple
    references: tuple
    category: str = "generic"


@dataclass(frozen=True)
class Story:  # the shape of tasks/summarization.py's items
    id: str
    question: str
    answers: tuple
    prompt: str
    bucket: str = "small"
    category: str = "summarization"

    @property
    def references(self):
        return self.answers


def question(n: int, plan: str = "valid", category: str = "generic"):
    item = Question(
        f"q{n}", f"Question {n}?", ("REFERENCE answer",), (f"Question {n}?",), ("REFERENCE answer",), category
    )
    return item, (f"My answer {n} <<plan:{plan}>>",)


@pytest.fixture
def server():
    running = Server(slow_seconds=2.0).start()
    yield running
    running.stop()


@pytest.fixture
def secret(monkeypatch):
    value = "sk-test-" + uuid.uuid4().hex
    monkeypatch.setenv(KEY_ENV, value)
    return value


class Rig:
    def __init__(self, server, cache_dir, family=None, **options):
        self.sleeps = []
        settings = dict(
            url=server.url, key_env=KEY_ENV, concurrency=4, timeout=0.5, retries=2, sleep=self.sleeps.append
        )
        settings.update(options)
        self.backend = OpenAIBackend("judge-model", **settings)
        self.judge = Judge(self.backend, ReplyCache(cache_dir), reasks=2)
        self.scorer = JudgeScorer(self.judge, family or KickInstruction())

    def run(self, cases):
        items, replies = [c[0] for c in cases], [c[1] for c in cases]
        self.scorer.prepare(items, replies)
        return [self.scorer.score(i, r) for i, r in zip(items, replies)]


def test_valid_replies_scored_and_a_rerun_asks_nothing(server, secret, tmp_path):
    cases = [question(n) for n in range(6)]
    first = Rig(server, tmp_path / "cache")
    scores = first.run(cases)
    assert scores == [6.0] * 6  # the fair judge gives the answer 6 in both orders
    assert server.requests == 12 == first.judge.stats.requests  # 6 items x 2 orders
    summary = first.scorer.summary()
    assert summary["cache_hits"] == 0 and summary["order_disagreements"] == 0 and summary["item_errors"] == 0
    assert summary["tokens_in"] == 12 * 100 and summary["tokens_out"] == 12 * 10

    again = Rig(server, tmp_path / "cache")
    assert again.run(cases) == scores
    assert server.requests == 12  # nothing new reached the server
    assert again.judge.stats.requests == 0 and again.judge.stats.cache_hits == 12


def test_failures_are_retried_then_counted_never_scored_or_dropped(server, secret, tmp_path):
    recovering = ["500,500,valid", "429,valid", "slow,valid", "drop,valid", "garbage,valid"]
    failing = ["500", "garbage", "slow", "drop"]
    cases = [question(n, plan) for n, plan in enumerate(recovering + failing)]
    rig = Rig(server, tmp_path / "cache")
    scores = rig.run(cases)

    assert len(scores) == len(cases)  # no item dropped
    assert scores[:5] == [6.0] * 5
    assert all(math.isnan(s) for s in scores[5:])  # judge errors: no score, not 0
    assert rig.scorer.item_errors == 4
    assert [rig.scorer.figures(*c)["judge_error"] for c in cases] == [0.0] * 5 + [1.0] * 4
    errors = [rig.scorer.judgment(*c).error for c in cases[5:]]
    assert errors[0] == "judge request failed: HTTP 500 (3 attempts)"
    assert errors[1] == "judge reply could not be read (3 asks): 'no scores here, sorry'"  # what it wrote instead
    assert errors[2] == "judge request failed: timed out after 0.5 s (3 attempts)"
    assert errors[3].startswith("judge request failed: connection failed") and errors[3].endswith("(3 attempts)")

    stats = rig.judge.stats
    assert stats.requests == server.requests
    # retries per order: 500,500,valid 2; 429,valid, slow,valid and drop,valid 1 each; garbage,valid none
    # (a reply that cannot be read is asked again, not retried); 500, slow and drop 2 each (3 attempts)
    assert stats.retries == 2 * (2 + 1 + 1 + 1) + 2 * 3 * 2
    assert stats.reasks == 2 * 1 + 2 * 2  # garbage,valid: once per order; garbage: twice per order
    assert 7.0 in rig.sleeps  # Retry-After: 7 honoured
    assert rig.sleeps.count(7.0) == 2  # once per order
    assert {1.0, 2.0} <= set(rig.sleeps)  # exponential backoff after 5xx, timeouts, drops

    # a rerun replays what was read from the cache and asks the judge again for everything else: what
    # failed to arrive, and what arrived unreadable (never cached as an answer)
    before = server.requests
    again = Rig(server, tmp_path / "cache")
    assert [s if not math.isnan(s) else None for s in again.run(cases)] == [6.0] * 5 + [None] * 4
    # 500, slow, drop: 3 attempts x 2 orders; garbage: 3 asks x 2 orders; garbage,valid: its plan is at
    # "valid" now, so its first ask is read (1 x 2 orders), where the first run needed a re-ask
    assert server.requests - before == again.judge.stats.requests == 3 * 3 * 2 + 3 * 2 + 1 * 2
    assert again.judge.stats.cache_hits == 4 * 2  # the valid replies of 500,500,valid ... drop,valid


def test_a_200_reply_that_is_not_a_chat_completion_is_retried_then_a_judge_error(server, secret, tmp_path):
    """A proxy's HTML page (or JSON of another API) served with HTTP 200: a retried judge error naming what
    came back, never an exception (which would fail the case) and never a score."""
    plans = ["html", "notchat", "nonjson", "nochoices"]
    cases = [question(n, f"{plan},valid") for n, plan in enumerate(plans)]
    cases += [question(n + 4, plan) for n, plan in enumerate(plans)]
    rig = Rig(server, tmp_path / "cache")
    scores = rig.run(cases)
    assert scores[:4] == [6.0] * 4
    assert all(math.isnan(s) for s in scores[4:]) and rig.scorer.item_errors == 4
    html, notchat, nonjson, nochoices = (rig.scorer.judgment(*c).error for c in cases[4:])
    assert html == (
        "judge request failed: reply is not a chat completion (text/html body: "
        "'<html><head><title>Sign in</title></head> <body>The proxy ne…') (3 attempts)"
    )
    assert notchat == (
        "judge request failed: reply is not a chat completion (no choices; application/json "
        'body: \'{"status": "queued", "id": "job-1"}\') (3 attempts)'
    )
    assert nonjson == (
        "judge request failed: reply is not a chat completion (application/json body: "
        '\'{"id": "chatcmpl-test", "choices": [{"mess\') (3 attempts)'
    )
    assert nochoices.startswith("judge request failed: reply is not a chat completion (an empty list of choices; ")
    assert nochoices.endswith("(3 attempts)")
    # each <plan>,valid: one retry per order; each plan alone: two per order (3 attempts)
    assert rig.judge.stats.retries == 4 * 1 * 2 + 4 * 2 * 2 and rig.judge.stats.requests == server.requests
    assert {1.0, 2.0} <= set(rig.sleeps)  # the usual backoff
    assert not [p for p in (tmp_path / "cache").rglob("*.json") if "html" in p.read_text()]  # failures not cached


def test_pairwise_orders_are_swapped_and_their_disagreement_reported(server, secret, tmp_path):
    rig = Rig(server, tmp_path / "cache")
    cases = [question(n, "biased") for n in range(4)]
    scores = rig.run(cases)
    # a judge that always prefers Assistant 1: the answer gets 6 as Assistant 2 and 9 as Assistant 1
    assert scores == [7.5] * 4
    summary = rig.scorer.summary()
    assert summary["order_pairs"] == 4 and summary["order_disagreement_rate"] == 1.0
    assert rig.scorer.figures(*cases[0])["order_disagreement"] == 1.0
    explanation = rig.scorer.explanation(*cases[0])
    assert explanation.index("[model as Assistant 2]") < explanation.index("[model as Assistant 1]")
    assert "Assistant 1 is better" in explanation


def test_two_turn_grading_and_summaries_through_the_server(server, secret, tmp_path):
    mtbench = Rig(server, tmp_path / "cache", family=MTBenchSingle())
    item = Question("mt", "", ("r1", "r2"), ("Solve x + 1 = 3.", "And x + 2 = 3?"), ("x = 2", "x = 1"), "math")
    assert mtbench.run([(item, ("x = 2 <<plan:valid>>", "x = 1"))]) == [6.0]
    assert mtbench.scorer.figures(item, ("x = 2 <<plan:valid>>", "x = 1")) == {
        "judge_error": 0.0,
        "judge_turn1": 6.0,
        "judge_turn2": 6.0,
    }
    assert server.requests == 2

    summaries = Rig(server, tmp_path / "cache", family=KickSummary())
    story = Story("s1", "A story.", ("REFERENCE highlights",), "Summarize the given story ...\n\nA story.")
    assert summaries.run([(story, ("A summary <<plan:valid>>",))]) == [6.0]
    figures = summaries.scorer.figures(story, ("A summary <<plan:valid>>",))
    assert figures["judge_coherence"] == 6.0 and figures["judge_reference"] == 9.0


def test_requests_run_concurrently_up_to_the_limit(server, secret, tmp_path):
    rig = Rig(server, tmp_path / "cache", concurrency=3)
    rig.run([question(n) for n in range(10)])
    assert 2 <= server.max_inflight <= 3


def test_the_key_is_sent_but_never_stored_or_reported(server, secret, tmp_path):
    cases = [question(0), question(1, "echo"), question(2, "garbage"), question(3, "500")]
    cache_dir = tmp_path / "cache"
    rig = Rig(server, cache_dir)
    scores = rig.run(cases)
    assert f"Bearer {secret}" in server.authorizations  # the key was in use
    assert rig.scorer.judgment(*cases[1]).error.startswith(
        "judge request failed: HTTP 400: bad request from Bearer ***"
    )

    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "summary": rig.scorer.summary(),
                "errors": rig.judge.stats.errors,
                "fingerprint": rig.scorer.fingerprint(),
                "backend": repr(rig.backend),
                "items": [
                    {"score": s, "explanation": rig.scorer.explanation(*c), "figures": rig.scorer.figures(*c)}
                    for s, c in zip(scores, cases)
                ],
            },
            default=str,
        )
    )
    files = [p for p in cache_dir.rglob("*") if p.is_file()] + [report]
    assert len(files) == 3  # the two replies read (the valid item, both orders; nothing else is cached), the report
    for path in files:
        assert secret not in path.read_text(), path


def test_a_refused_key_stops_the_run_naming_the_variable_not_the_key(server, secret, tmp_path):
    rig = Rig(server, tmp_path / "cache")
    with pytest.raises(KickError) as caught:
        rig.run([question(0, "401")])
    message = str(caught.value)
    assert "HTTP 401" in message and KEY_ENV in message and secret not in message


def test_without_the_openai_package_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(KickError, match=r"pip install 'pytest-kick\[judge\]'"):
        OpenAIBackend("gpt-4", url="http://127.0.0.1:9/v1")


def test_retry_after_in_seconds_milliseconds_or_a_date():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime
    from types import SimpleNamespace

    from pytest_kick.judge.client import _retry_after

    def after(**headers):
        return _retry_after(SimpleNamespace(headers=headers))

    assert after(**{"retry-after": "3"}) == 3.0
    assert after(**{"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    in_a_minute = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    assert 30 < after(**{"retry-after": in_a_minute}) <= 60
    assert after(**{"retry-after": "soon"}) is None and after() is None


@pytest.mark.parametrize(
    "body, content_type, problem",
    [
        ("<html>oops</html>", "application/json", "(application/json body: '<html>oops</html>')"),
        ("[1, 2]", "application/json", "(no choices; application/json body: '[1, 2]')"),
        ('{"choices": "x"}', "application/json", "(no choices; "),
        ('{"choices": [{"index": 0}]}', "application/json", "(no message text in its first choice; "),
        (
            '{"choices": [{"message": {"content": 5}}]}',
            "",
            "(no message text in its first choice; no content type body",
        ),
    ],
)
def test_what_is_not_a_chat_completion(body, content_type, problem):
    from pytest_kick.judge.client import NotCompletion, read_completion

    with pytest.raises(NotCompletion) as caught:
        read_completion(body, content_type)
    assert str(caught.value).startswith("reply is not a chat completion ") and problem in str(caught.value)
    assert read_completion(
        '{"choices": [{"message": {"content": "7 6"}}], "usage": {"prompt_tokens": 3}}', "application/json"
    ) == ("7 6", 3, 0)
    with pytest.raises(NotCompletion, match=r"an empty list of choices"):
        read_completion('{"choices": []}', "application/json")  # retried, then a judge error
    assert read_completion('{"choices": [{"message": {"content": null}}]}', "") == (None, 0, 0)  # no text
