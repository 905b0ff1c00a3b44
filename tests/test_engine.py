"""The local engine: generation (batch invariance, stop strings, token budgets, first lines, prefixes, the cache
API). Log-likelihood, rolling log-likelihood and bfloat16 are in test_engine_loglikelihood.py."""

import warnings

import engine_helpers
import pytest
from engine_helpers import PROMPTS

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

engines = engine_helpers.engines  # the fixture


def test_generation_is_identical_for_batch_size_1_and_16(engines):
    one, sixteen = engines
    requests = [GenerationRequest(p, 12) for p in PROMPTS]
    outputs_1 = one.generate(requests)
    outputs_16 = sixteen.generate(requests)
    assert outputs_1 == outputs_16
    assert any(o for o in outputs_1)


def test_results_come_back_in_request_order(engines):
    _, sixteen = engines
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    together = sixteen.generate(requests)
    alone = [sixteen.generate([r])[0] for r in requests[:4]]
    assert together[:4] == alone


def test_token_budget_and_length_factor(engines):
    _, sixteen = engines
    prompt = "abc"  # byte tokenizer: 3 tokens
    fixed, factor, free = sixteen.generate_ids(
        [GenerationRequest(prompt, 5), GenerationRequest(prompt, 50, length_factor=2), GenerationRequest(prompt, 50)]
    )
    assert len(fixed) == 5 and fixed == free[:5]  # the random model emits no EOS this early
    assert len(factor) == 6 and factor == free[:6]  # LLM-KICK: max_length 3 x prompt = 2 x prompt new tokens


def test_stop_strings_cut_the_output(engines):
    _, sixteen = engines
    free = sixteen.generate([GenerationRequest(PROMPTS[0], 20)])[0]
    assert len(free) >= 3
    stop = free[2]
    cut = sixteen.generate([GenerationRequest(PROMPTS[0], 20, stop=(stop,))])[0]
    assert cut == free[: free.find(stop)]
    assert stop not in cut


@pytest.mark.parametrize(
    "text, cut",
    [
        ("Paris\nQ: next", "Paris"),
        ("\n\n Paris\nmore", "\n\n Paris"),
        ("  \n", "  \n"),
        ("Paris", "Paris"),
        ("", ""),
        ("a STOP b\nc", "a "),
    ],
)
def test_first_line_cuts_at_the_first_newline_after_text(text, cut):
    from pytest_kick.engines.tokens import cut_output

    assert cut_output(text, ("STOP",), first_line=True) == cut
    assert cut_output(text, ()) == text


def test_first_line_stops_decoding_where_the_first_line_of_text_ends(tiny):
    model, tokenizer = tiny
    free = Engine(model, tokenizer, "cpu", 4).generate_ids([GenerationRequest(PROMPTS[0], 20)])[0]
    k = next(k for k in range(3, len(free)) if free[k] not in free[:k])
    newline = {free[0], free[k]}  # a leading newline (kept, decoding goes on), then one after text

    class Lines(Engine):  # reads those two tokens as newlines, every other as "x"
        def _decode(self, tokens):
            return "".join("\n" if t in newline else "x" for t in tokens)

    engine = Lines(model, tokenizer, "cpu", 4)
    request = GenerationRequest(PROMPTS[0], 20, first_line=True)
    assert engine.generate_ids([request])[0] == free[: k + 1]  # stopped at the newline, not after 20 tokens
    assert engine.generate([request]) == ["\n" + "x" * (k - 1)]
    assert engine.generate([GenerationRequest(PROMPTS[0], 20)])[0] == engine._decode(free)


def test_triviaqa_strict_asks_for_the_first_line_only_and_scores_it_the_same(engines):
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.icrqa import ICRQA, TriviaItem, prediction

    task, item = ICRQA("closed"), TriviaItem("x", "Who?", ("Paris",), ("paris",), "")
    [strict] = task.requests([item], [], Settings(protocol="strict"))
    [kick] = task.requests([item], [], Settings(protocol="kick"))
    assert strict.first_line and not kick.first_line  # kick decodes as the repo did: all 32 tokens
    from pytest_kick.engines.tokens import cut_output

    for output in ["Paris\nQ: next?", "\n Paris \nA: b", "  ", "Paris", "London\nParis"]:  # same score
        cut = cut_output(output, (), strict.first_line)
        assert prediction(cut).strip() == prediction(output).strip()
        assert task.score(item, strict, cut, Settings()) == task.score(item, strict, output, Settings())


def test_rows_that_stop_early_leave_their_batch_without_changing_the_others(engines):
    _, sixteen = engines
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, [1, 9, 3, 12, 0, 5, 2, 7])]
    together = sixteen.generate_ids(requests)
    assert [len(t) for t in together] == [1, 9, 3, 12, 0, 5, 2, 7]
    assert together == [sixteen.generate_ids([r])[0] for r in requests]


def test_progress_reports_every_batch(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, "cpu", batch_size=8)
    seen = []
    engine.generate([GenerationRequest(p, 2) for p in PROMPTS], progress=lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert seen[-1] == (20, 20) and all(t == 20 for _, t in seen)
    assert all(0 < b - a <= 8 for a, b in zip([0] + done, done))  # one report per batch of at most 8


def test_generation_on_a_shared_prefix_equals_generation_in_full(tiny):
    model, tokenizer = tiny
    shots = "".join(f"Q: what is {k} + {k}?\nA: {2 * k}\n\n" for k in range(6))
    requests = [GenerationRequest(shots + f"Q: what is {q}?\nA:", 8, stop=("\n",)) for q in ("x", "yy", "a b c")]
    requests += [GenerationRequest("unrelated", 8)]
    on = Engine(model, tokenizer, "cpu", 2, reuse_prefix=True)
    off = Engine(model, tokenizer, "cpu", 2, reuse_prefix=False)
    assert on.generate_ids(requests) == off.generate_ids(requests)


def test_no_deprecated_cache_argument_reaches_transformers(engines):
    """transformers 5 renamed past_key_values to cache; the old name warns on every forward pass."""
    _, sixteen = engines
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        sixteen.generate([GenerationRequest(p, 3) for p in PROMPTS[:3]])
        sixteen.loglikelihood([LoglikelihoodRequest(PROMPTS[0] * 3 + p, " yes") for p in PROMPTS[:3]])
        sixteen.loglikelihood_rolling([RollingRequest("some text to score", "before")])
