"""Prefixes kept between log-likelihood calls (engines/prefix_store.py): the same figures as running each call
from scratch, while each step of a growing prompt runs only its new tokens."""

import pytest
from engine_helpers import PREFIX_TOLERANCE

from pytest_kick.engines import passes
from pytest_kick.engines.local import LocalEngine
from pytest_kick.requests import LoglikelihoodRequest

ARTICLE = "The council met on Tuesday to discuss the new bridge over the river. " * 6
VALUES = [f"{v}\n" for v in range(1, 11)]


def steps(prompt: str, chosen=(7, 3, 9, 2)):
    """The requests of a judge forcing one slot after another: each step's prompt extends the last."""
    found, written = [], prompt
    for v in chosen:
        found.append([LoglikelihoodRequest(written, value) for value in VALUES])
        written += f"{v}\n"
    return found


def answers(engine, calls):
    return [engine.loglikelihood(requests) for requests in calls]


def close(a, b):
    flat_a = [x for call in a for x in call]
    flat_b = [x for call in b for x in call]
    assert [g for _, g in flat_a] == [g for _, g in flat_b]
    assert max(abs(x - y) for (x, _), (y, _) in zip(flat_a, flat_b)) < PREFIX_TOLERANCE


@pytest.mark.parametrize("packed", [True, False])
def test_a_growing_prompt_runs_its_start_once_and_scores_as_from_scratch(tiny, monkeypatch, packed):
    model, tokenizer = tiny
    if not packed:  # the padded path copies the stored cache for its batch instead of restoring it after
        monkeypatch.setattr(passes, "packable", lambda model: False)
    calls = steps(ARTICLE + "Rate the summary.\n") + steps(ARTICLE + "Rate the other summary.\n")
    plain = answers(LocalEngine(model, tokenizer, "cpu", batch_size=4), calls)
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=4, prefix_memory=1 << 26)
    kept = answers(engine, calls)
    close(plain, kept)
    stats = engine.prefix_store.stats
    if packed:
        prompt = len(tokenizer(ARTICLE + "Rate the summary.\n")["input_ids"])
        assert stats["misses"] == 1  # the first prompt, once; every later step extends or cuts what is kept
        assert stats["hits"] == len(calls) - 1
        assert stats["tokens_reused"] > (len(calls) - 2) * prompt
        assert stats["tokens_run"] < 2 * prompt  # the second prompt ran only from where it leaves the article
    else:  # a sliding-window (or otherwise unpackable) model cannot cut a cache back: nothing is kept
        assert stats["hits"] == 0 and not engine.prefix_store.entries


def test_the_budget_bounds_what_is_kept_and_answers_stay_right(tiny):
    model, tokenizer = tiny
    calls = [step for k in range(4) for step in steps(f"Article number {k}. " + ARTICLE, chosen=(5, 6))]
    plain = answers(LocalEngine(model, tokenizer, "cpu", batch_size=4), calls)
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=4, prefix_memory=1)  # room for one cache only
    close(plain, answers(engine, calls))
    assert len(engine.prefix_store.entries) == 1
    assert engine.prefix_store.stats["hits"] == 4  # each article's second step extended its first


def test_without_prefix_memory_nothing_is_kept(tiny):
    model, tokenizer = tiny
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=4)
    engine.loglikelihood(steps(ARTICLE)[0])
    assert engine.prefix_store is None
