"""Fewer, cheaper requests to a server (engines/served_choice.py), against the loopback server answering from
tiny-random-llama: a question of one-token choices takes one request once verified, with the local engine's
answers; a server whose next-token log-probs disagree keeps one request per choice; prefixes go out first."""

from __future__ import annotations

import pytest
import served_helpers
from served_helpers import served
from served_server import Model, Server

from pytest_kick.engines import served_choice
from pytest_kick.requests import LoglikelihoodRequest

server, fresh, local = served_helpers.server, served_helpers.fresh, served_helpers.local  # the fixtures

SHOTS = "Q: 2+2? A: B\nQ: 3+3? A: C\n" * 4  # a shared few-shot block, longer than served_choice.PREFIX tokens
QUESTIONS = [
    [LoglikelihoodRequest(f"{SHOTS}Q: question {n}? A:", letter) for letter in "ABCD"] for n in range(5)
]  # the byte tokenizer: each letter is one token, the context ends before it
REQUESTS = [r for question in QUESTIONS for r in question]


@pytest.fixture
def whole_vocabulary(monkeypatch, tiny):
    """Top log-probs over the tiny model's whole vocabulary: its random weights rank letters anywhere (a real
    model puts its answer letters in vLLM's top 20)."""
    monkeypatch.setattr(served_choice, "TOP", tiny[0].config.vocab_size)


def test_one_request_per_question_once_verified(fresh, tiny, local, whole_vocabulary):
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    remote = engine.loglikelihood(REQUESTS)
    for (lp, greedy), (want, want_greedy) in zip(remote, local.loglikelihood(REQUESTS)):
        assert lp == pytest.approx(want, abs=1e-4) and greedy == want_greedy
    assert engine.one_request is True and engine.choice_check["agreed"] is True
    assert engine.choice_check["largest_difference"] < 1e-4
    assert len(fresh.requests) == engine.client.posts == 4 + 1 + 4  # the first question both ways, then one each
    shortcut = fresh.requests[-4:]
    assert all(b["max_tokens"] == 1 and b["return_tokens_as_token_ids"] and "echo" not in b for b in shortcut)
    again = engine.loglikelihood(REQUESTS[:8])  # verified once per engine
    assert len(fresh.requests) == 9 + 2 and again == remote[:8]


class Shifted(Model):
    """A server whose next-token log-probs are 0.5 nats off its prompt log-probs."""

    def generate(self, ids, max_tokens, stop, top):
        new, text, finish, reason, steps = super().generate(ids, max_tokens, stop, top)
        steps = [(t, lp + 0.5, [(i, v + 0.5) for i, v in best]) for t, lp, best in steps]
        return new, text, finish, reason, steps


def test_a_server_that_disagrees_keeps_one_request_per_choice(tiny, local, whole_vocabulary):
    model, tokenizer = tiny
    with Server(Shifted(model, tokenizer, "tiny-random-llama")) as shifted:
        engine = served(shifted.base_url, tokenizer)
        remote = engine.loglikelihood(REQUESTS)
        assert engine.one_request is False
        assert engine.choice_check["largest_difference"] == pytest.approx(0.5, abs=1e-3)
        assert len(shifted.requests) == 20 + 1  # every choice on its own, plus the one check
    for (lp, greedy), (want, want_greedy) in zip(remote, local.loglikelihood(REQUESTS)):
        assert lp == pytest.approx(want, abs=1e-4) and greedy == want_greedy


def test_a_choice_outside_the_top_logprobs_falls_back_to_its_own_requests(fresh, tiny, local, monkeypatch):
    monkeypatch.setattr(served_choice, "TOP", 1)  # only the greedy token: most letters are not in it
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    remote = engine.loglikelihood(REQUESTS)
    for (lp, greedy), (want, want_greedy) in zip(remote, local.loglikelihood(REQUESTS)):
        assert lp == pytest.approx(want, abs=1e-4) and greedy == want_greedy


def test_groups_and_waves():
    pairs = [([1, 2], [7]), ([1, 2], [8]), ([1, 2], [9, 9]), ([3], [7]), ([5], [6]), ([5], [4])]
    found, rest = served_choice.groups(pairs)
    assert found == {(1, 2): [0, 1], (5,): [4, 5]} and rest == [2, 3]
    family = [0] * served_choice.PREFIX
    first, later = served_choice.waves([family + [1], [9], family + [2], family + [3], [9]])
    assert first == [0, 1] and later == [2, 3, 4]
