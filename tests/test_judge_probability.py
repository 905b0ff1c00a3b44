"""Scores read from a local judge's probabilities (judge/probability.py): the format forced, never unreadable."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.engines.local import LocalEngine
from pytest_kick.judge import local
from pytest_kick.judge.cache import ReplyCache
from pytest_kick.judge.client import CallableBackend
from pytest_kick.judge.probability import (
    FORMATS,
    VALUES,
    EngineForcing,
    ProbabilityJudge,
    argmax,
    distribution,
    expected,
    reading,
)
from pytest_kick.judge.protocols import family_for
from pytest_kick.judge.runner import Judge
from pytest_kick.judge.scorer import JudgeScorer
from pytest_kick.tasks.instruction import Conversation
from pytest_kick.tasks.summarization import Story

QUESTION = "What is the capital of France?"
REFERENCE = "The capital of France is Paris. It lies on the Seine."


def conversation(category: str) -> Conversation:
    return Conversation(f"q-{category}", QUESTION, (REFERENCE,), (QUESTION,), (REFERENCE,), category)


def story() -> Story:
    prompt = "Summarize: Paris hosted a fair on Sunday. Crowds came.\n@highlight\nParis hosted a fair"
    return Story("s1", "Paris hosted a fair on Sunday.", ("Paris hosted a fair",), prompt, "small")


logprob = st.floats(min_value=-1e4, max_value=0, allow_nan=False)
PAIR_ASKS = family_for("instruction", "vicuna", "kick").asks(conversation("generic"), ["x"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(logprob, min_size=10, max_size=10), min_size=8, max_size=8), st.sampled_from([1, 2]))
def test_the_expected_score_always_lies_within_the_scale(slots, model_slot):
    dists = [distribution(s) for s in slots]
    for probs in dists:
        assert math.isclose(sum(probs), 1.0) and all(p >= 0 for p in probs)
        assert 1.0 <= expected(probs) <= 10.0 and argmax(probs) in VALUES
    for reader, count in (("pair_lines", 8), ("pair_first_line", 2), ("pair_tuple", 2), ("rating", 1)):
        ask = PAIR_ASKS[model_slot - 1]
        ask = type(ask)(
            ask.system, ask.user, ask.decoding, reader, ask.template, 0 if reader == "rating" else model_slot
        )
        found = reading(ask, dists[:count])
        assert 1.0 <= found.model <= 10.0
        assert found.reference is None or 1.0 <= found.reference <= 10.0


class Scripted:
    """A Forcing whose judge puts all its belief on ``best`` (or on 7 then 3 ... by slot), recording each context."""

    def __init__(self, best):
        self.best = best
        self.contexts = []
        self.calls = 0

    def render(self, conversation):
        return local.plain_prompt(conversation) + " "

    def loglikelihood(self, requests):
        self.calls += 1
        self.contexts += [r.context for r in requests]
        return [
            (0.0 if r.continuation.lstrip().startswith(f"{self.best(r.context)}") else -5.0, False) for r in requests
        ]

    def generate(self, requests):
        return ["Because it says so." for _ in requests]


def test_each_slot_is_read_after_the_argmax_of_the_ones_before(tmp_path):
    # the first slot of a line prefers 8, the second 3: the second is asked after "8 " (the first's argmax)
    forcing = Scripted(lambda context: 3 if context.rstrip().endswith("8") else 8)
    judge = ProbabilityJudge(Judge(CallableBackend(list, "scripted"), ReplyCache(tmp_path)), forcing)
    ask = family_for("instruction", "vicuna", "kick").asks(conversation("generic"), ["An answer."])[0]
    (outcome,) = judge.run([ask])
    weight = 1 / (1 + 9 * math.exp(-5))  # the believed value's probability
    assert outcome.reading.reference == pytest.approx(8 * weight + (55 - 8) * (1 - weight) / 9)  # Assistant 1
    assert outcome.argmax.reference == 8 and outcome.argmax.model == 3
    assert outcome.explanation.startswith("8 3\n[scores read from the judge's probabilities:")
    assert forcing.calls == 2  # one engine call per slot, the second after the first's argmax
    assert all(c.endswith("ASSISTANT: ") or c.endswith(" ") for c in forcing.contexts)


def test_a_judgment_is_cached_and_a_rerun_asks_the_engine_nothing(tmp_path):
    forcing = Scripted(lambda context: 7)
    family = family_for("instruction", "vicuna", "strict")
    asks = family.asks(conversation("generic"), ["An answer."])
    first = ProbabilityJudge(Judge(CallableBackend(list, "scripted"), ReplyCache(tmp_path)), forcing, explain=True)
    one = first.run(asks)
    assert first.stats.requests == 1 and forcing.calls == 1
    assert one[0].explanation.endswith("Because it says so.")
    again = Scripted(lambda context: 2)
    second = ProbabilityJudge(Judge(CallableBackend(list, "scripted"), ReplyCache(tmp_path)), again, explain=True)
    assert second.run(asks) == one and again.calls == 0 and second.stats.cache_hits == 1
    assert second.stats.requests == 0


FAMILIES = [
    ("instruction", "vicuna", "kick", conversation("generic"), "pair_first_line"),
    ("instruction", "vicuna", "kick", conversation("math"), "pair_tuple"),
    ("instruction", "vicuna", "strict", conversation("generic"), "rating"),
    ("summarization", "small", "kick", story(), "pair_lines"),
]


@pytest.mark.parametrize("task, variant, protocol, item, reader", FAMILIES)
def test_forcing_the_format_on_tiny_random_llama_always_gives_a_judgment(
    tiny, tmp_path, task, variant, protocol, item, reader
):
    """A random model never writes the format; forced, every slot of every judgment has a score on the scale."""
    model, tokenizer = tiny
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=8)
    backend = local.local_backend(engine, "tiny-random-llama", "tiny:seed0", 8)
    scorer = JudgeScorer(
        ProbabilityJudge(Judge(backend, ReplyCache(tmp_path)), EngineForcing(engine)),
        family_for(task, variant, protocol),
    )
    answers = [("Paris.",), ("",)][: 2 if reader == "rating" else 1]  # a pair's 2 asks: 110 forced values each
    judgments = scorer.prepare([item] * len(answers), answers)
    assert all(1.0 <= j.score <= 10.0 and not j.error for j in judgments)
    assert all(1.0 <= j.figures["judge_argmax"] <= 10.0 for j in judgments)
    asks = scorer.family.asks(item, ["Paris."])
    assert {a.reader for a in asks} == {reader}
    found = judgments[0].explanation
    assert found.count("[scores read from the judge's probabilities:") == len(asks)
    assert found.count("argmax") == len(asks) * len(FORMATS[reader])
    summary = scorer.summary()
    assert summary["item_errors"] == 0 and summary["unreadable"] == 0 and summary["reasks"] == 0
