"""A local judge: conversations through an engine's generate, end to end on tiny-random-llama."""

import math

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.judge import build_scorer
from pytest_kick.judge.local import engine_chat, local_backend, plain_prompt
from pytest_kick.judge.protocols import bundled_dir
from pytest_kick.tasks.summarization import BUNDLED, load_stories


class ScriptedEngine:
    def __init__(self, reply):
        self.reply = reply
        self.requests = []

    def generate(self, requests, progress=None):
        self.requests += requests
        return [self.reply] * len(requests)


class CountingEngine:
    def __init__(self, engine):
        self.engine = engine
        self.requests = 0

    def generate(self, requests, progress=None):
        self.requests += len(requests)
        return self.engine.generate(requests, progress=progress)


def test_conversations_become_chat_requests_with_the_system_prompt():
    engine = ScriptedEngine("  8 6\nreason  ")
    chat = engine_chat(engine, max_new_tokens=64)
    assert chat([(("system", "Be fair."), ("user", "Rate this."))]) == ["8 6\nreason"]
    (request,) = engine.requests
    assert request.messages == (("system", "Be fair."), ("user", "Rate this."))
    assert request.max_new_tokens == 64
    assert request.prompt == plain_prompt(request.messages) == "Be fair.\n\nUSER: Rate this.\nASSISTANT:"


def test_local_judge_identity_and_cap_key_the_cache(tmp_path):
    stories = load_stories(bundled_dir() / BUNDLED)[:1]
    replies = [("A summary.",)]
    first = ScriptedEngine("8 7\n8 7\n8 7\n8 7\nok")
    scorer = build_scorer("summarization", "small", "kick", local_backend(first, "m", "m@rev1", 64), tmp_path)
    scorer.prepare(stories, replies)
    assert len(first.requests) == 2
    same = ScriptedEngine("unused")
    build_scorer("summarization", "small", "kick", local_backend(same, "m", "m@rev1", 64), tmp_path).prepare(
        stories, replies
    )
    assert same.requests == []
    for identity, cap in (("m@rev2", 64), ("m@rev1", 128)):
        other = ScriptedEngine("8 7\n8 7\n8 7\n8 7\nok")
        build_scorer("summarization", "small", "kick", local_backend(other, "m", identity, cap), tmp_path).prepare(
            stories, replies
        )
        assert len(other.requests) == 2, (identity, cap)


def test_tiny_random_llama_as_judge_end_to_end(tiny, tmp_path):
    """Mechanics: real prompts through the real engine. A random model's replies hold no scores, so
    every item is a judge error — counted, never a score — and, since an unreadable reply is never cached as
    an answer, a rerun asks the judge again (the same three asks: the same greedy replies)."""
    model, tokenizer = tiny
    engine = CountingEngine(Engine(model, tokenizer, "cpu", batch_size=8))
    stories = load_stories(bundled_dir() / BUNDLED)[:2]
    replies = [("The landslide buried 83 workers.",), ("Talks were held.",)]
    scorer = build_scorer(
        "summarization",
        "small",
        "strict",
        local_backend(engine, "tiny-random-llama", "tiny-random-llama:seed0", 8),
        tmp_path,
    )
    scores = [scorer.score(s, r) for s, r in zip(stories, replies)]
    assert len(scores) == 2 and all(math.isnan(s) for s in scores)
    assert engine.requests == 2 * 3  # two items, one ask each, asked three times
    summary = scorer.summary()
    assert summary["item_errors"] == 2 and summary["unreadable"] == 2 and summary["reasks"] == 4

    rerun = CountingEngine(engine.engine)
    again = build_scorer(
        "summarization",
        "small",
        "strict",
        local_backend(rerun, "tiny-random-llama", "tiny-random-llama:seed0", 8),
        tmp_path,
    )
    assert all(math.isnan(again.score(s, r)) for s, r in zip(stories, replies))
    assert rerun.requests == 2 * 3 and again.summary()["cache_hits"] == 0
    assert not list((tmp_path / "judge").rglob("*.json"))
