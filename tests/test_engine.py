"""The local engine: batch invariance, stop strings, token budgets, log-likelihood (direct computation, prefix
reuse on and off, head only at the scored positions), rolling log-likelihood, the cache API and bfloat16."""

import math
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

PROMPTS = [
    "Please give answer to this question: Who wrote Hamlet?\nThe answer is ",
    "Q: 2+2?\nA:",
    "A much longer prompt, so that left padding has real work to do in a mixed batch of requests: x y z",
    "short",
    "",
] + [f"Question number {i}: what comes after {i}?" for i in range(15)]
PREFIX_TOLERANCE = 1e-4  # float32 log-likelihoods, prefix reuse on vs off (measured gaps are ~1e-6)


@pytest.fixture(scope="module")
def engines(tiny):
    model, tokenizer = tiny
    return Engine(model, tokenizer, "cpu", batch_size=1), Engine(model, tokenizer, "cpu", batch_size=16)


def direct_logprobs(model, tokens):
    """log p(tokens[t] | tokens[:t]) for t >= 1, from one plain forward pass over the full logits."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].float().log_softmax(-1)
    return [logits[t - 1, tokens[t]].item() for t in range(1, len(tokens))]


# --- generation ----------------------------------------------------------------------------------


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


# --- log-likelihood ------------------------------------------------------------------------------


def test_loglikelihood_is_batch_invariant_and_matches_a_direct_computation(engines, tiny):
    model, tokenizer = tiny
    one, sixteen = engines
    requests = [LoglikelihoodRequest(p, " yes") for p in PROMPTS[:4]] + [LoglikelihoodRequest("Answer:", " B")]
    r1, r16 = one.loglikelihood(requests), sixteen.loglikelihood(requests)
    for (a, ga), (b, gb) in zip(r1, r16):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb
    ctx = tokenizer("Answer:").input_ids
    cont = tokenizer(" B", add_special_tokens=False).input_ids
    direct = sum(direct_logprobs(model, ctx + cont)[len(ctx) - 1 :])
    assert r16[-1][0] == pytest.approx(direct, abs=1e-4)
    assert all(math.isfinite(v) and v < 0 for v, _ in r16)


def test_greedy_flag_is_true_exactly_for_the_greedy_continuation(engines, tiny):
    _, tokenizer = tiny
    _, sixteen = engines
    for prompt in PROMPTS:  # a greedy continuation that survives decoding (random bytes may not be UTF-8)
        ids = sixteen.generate_ids([GenerationRequest(prompt, 3)])[0]
        greedy = tokenizer.decode(ids)
        if tokenizer(greedy, add_special_tokens=False).input_ids == ids and not prompt.endswith(" "):
            break
    else:
        pytest.fail("no prompt has a greedy continuation that round-trips through text")
    other = "".join("a" if c != "a" else "b" for c in greedy)
    [(lp_greedy, is_greedy), (lp_other, is_other)] = sixteen.loglikelihood(
        [LoglikelihoodRequest(prompt, greedy), LoglikelihoodRequest(prompt, other)]
    )
    assert is_greedy and not is_other and lp_greedy > lp_other


def mmlu_shaped(subjects=3, questions=4):
    """Each subject: a long shared few-shot block; each question: four one-letter continuations."""
    requests = []
    for s in range(subjects):
        block = f"Subject {s}.\n\n" + "".join(f"Q{k}? {s * k}\nAnswer: {'ABCD'[k % 4]}\n\n" for k in range(5))
        for q in range(questions):
            requests += [LoglikelihoodRequest(f"{block}Question {q} of {s}?\nAnswer:", f" {c}") for c in "ABCD"]
    return requests


@pytest.mark.parametrize("batch_size", [1, 5])
def test_prefix_reuse_on_and_off_agree_on_mmlu_shaped_requests(tiny, batch_size):
    model, tokenizer = tiny
    on = Engine(model, tokenizer, "cpu", batch_size, reuse_prefix=True)
    off = Engine(model, tokenizer, "cpu", batch_size, reuse_prefix=False)
    requests = mmlu_shaped()
    a, b = on.loglikelihood(requests), off.loglikelihood(requests)
    assert [g for _, g in a] == [g for _, g in b]
    assert max(abs(x - y) for (x, _), (y, _) in zip(a, b)) < PREFIX_TOLERANCE
    assert on.last_plan["groups"] == 3 and on.last_plan["tokens_fed"] < off.last_plan["tokens_fed"] / 2
    assert off.last_plan["passes"] == 12  # four letters, one pass per question either way


texts = st.text(alphabet="ab c\n", min_size=0, max_size=12)


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(texts, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), texts, texts.filter(bool)), min_size=1, max_size=10),
    st.integers(1, 6),
)
def test_prefix_reuse_on_and_off_agree_on_random_shared_prefixes(tiny, prefixes, picks, batch_size):
    model, tokenizer = tiny
    requests = [LoglikelihoodRequest(prefixes[p % len(prefixes)] * 4 + middle, end) for p, middle, end in picks]
    a = Engine(model, tokenizer, "cpu", batch_size, reuse_prefix=True).loglikelihood(requests)
    b = Engine(model, tokenizer, "cpu", batch_size, reuse_prefix=False).loglikelihood(requests)
    assert max(abs(x - y) for (x, _), (y, _) in zip(a, b)) < PREFIX_TOLERANCE
    assert [g for _, g in a] == [g for _, g in b]


@pytest.mark.parametrize("reuse", [True, False])
def test_packed_passes_equal_right_padded_batches(tiny, monkeypatch, reuse):
    """Requests packed back to back in one row (the default) score as they do right-padded, one per row (the
    path of models with sliding-window attention)."""
    import pytest_kick.engines.passes as passes

    model, tokenizer = tiny
    requests = mmlu_shaped() + [LoglikelihoodRequest(p, " next") for p in PROMPTS]
    engine = Engine(model, tokenizer, "cpu", 4, reuse_prefix=reuse)
    packed = engine.loglikelihood(requests)
    plan = engine.last_plan
    assert plan["forward_passes"] < plan["passes"] / 2  # several requests a pass
    monkeypatch.setattr(passes, "packable", lambda model: False)
    padded = engine.loglikelihood(requests)
    assert engine.last_plan["tokens_computed"] > plan["tokens_computed"]  # the padding packing saves
    assert [g for _, g in packed] == [g for _, g in padded]
    assert max(abs(x - y) for (x, _), (y, _) in zip(packed, padded)) < PREFIX_TOLERANCE


def test_sliding_window_models_are_not_packed(tiny):
    from types import SimpleNamespace

    from pytest_kick.engines.passes import packable

    model, _ = tiny
    assert packable(model)
    for config in [
        SimpleNamespace(layer_types=["full_attention", "sliding_attention"]),
        SimpleNamespace(sliding_window=4096),
        SimpleNamespace(text_config=SimpleNamespace(sliding_window=512)),
    ]:
        assert not packable(SimpleNamespace(config=config))
    assert packable(SimpleNamespace(config=SimpleNamespace(layer_types=["full_attention"] * 2, sliding_window=512)))


def test_head_only_path_matches_the_full_logits(tiny):
    import torch

    from pytest_kick.engines.passes import decoder, read_positions

    model, _ = tiny
    tokens = list(range(5, 45))
    with torch.no_grad():
        full = model(torch.tensor([tokens])).logits[0].float().log_softmax(-1)  # [T, V]
        hidden = decoder(model)(input_ids=torch.tensor([tokens])).last_hidden_state[0]  # [T, H]
        reads = [(t, tokens[t + 1]) for t in range(len(tokens) - 1)] + [(3, 7), (3, 9)]
        found = read_positions(model, hidden, reads)
    for (t, target), (lp, greedy) in zip(reads, found):
        assert lp == pytest.approx(full[t, target].item(), abs=1e-5)
        assert greedy == (full[t].argmax().item() == target)


def test_softcapping_is_applied_where_a_config_has_it(tiny, monkeypatch):
    import torch

    from pytest_kick.engines.passes import head_logits

    model, _ = tiny
    hidden = torch.randn(3, model.config.hidden_size) * 50
    plain = head_logits(model, hidden)
    monkeypatch.setattr(model.config, "final_logit_softcapping", 2.0, raising=False)
    capped = head_logits(model, hidden)
    assert torch.allclose(capped, torch.tanh(plain / 2.0) * 2.0) and capped.abs().max() <= 2.0


def test_context_too_long_keeps_its_last_tokens(tiny, monkeypatch):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, "cpu", 4)
    monkeypatch.setattr(engine, "max_length", 20)
    long, tail = "x" * 40 + "the end:", "x" * 11 + "the end:"  # byte tokens: the last 19 tokens are fed
    [(a, _), (b, _)] = engine.loglikelihood([LoglikelihoodRequest(long, " A"), LoglikelihoodRequest(tail, " A")])
    assert a == pytest.approx(b, abs=1e-5)


# --- rolling log-likelihood ----------------------------------------------------------------------


def test_rolling_matches_a_direct_computation(engines, tiny):
    model, tokenizer = tiny
    _, sixteen = engines
    context, text = "The text before. ", "and the text to score, token by token."
    [first, after] = sixteen.loglikelihood_rolling([RollingRequest(context + text), RollingRequest(text, context)])
    ids = tokenizer(context + text, add_special_tokens=False).input_ids
    direct = direct_logprobs(model, ids)
    assert len(first) == len(ids) - 1 and first == pytest.approx(direct, abs=1e-5)  # the first token: unscored
    assert len(after) == len(text) and after == pytest.approx(direct[len(context) - 1 :], abs=1e-5)


def test_rolling_windows_cover_every_token_with_bounded_context(engines, tiny):
    model, tokenizer = tiny
    _, sixteen = engines
    text = "".join(f"line {k}: abc\n" for k in range(12))  # 144 byte tokens
    [found] = sixteen.loglikelihood_rolling([RollingRequest(text, "", window=32)])
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert len(found) == len(ids) - 1
    assert found[:31] == pytest.approx(direct_logprobs(model, ids[:32]), abs=1e-5)  # the first window
    # later windows: tokens 32..47, 48..63, ... (16 each), each token seeing the window ending at its block's end
    start = 32 + 16 * 2
    block = direct_logprobs(model, ids[start + 16 - 32 : start + 16])[-16:]
    assert found[start - 1 : start + 15] == pytest.approx(block, abs=1e-5)


# --- dtype ---------------------------------------------------------------------------------------


def test_bfloat16_runs_all_three_calls_and_agrees_with_float32(tiny):
    import copy

    import torch

    model, tokenizer = tiny
    half = copy.deepcopy(model).to(torch.bfloat16)
    full, bf16 = Engine(model, tokenizer, "cpu", 4), Engine(half, tokenizer, "cpu", 4)
    assert bf16.dtype == "bfloat16"
    requests = mmlu_shaped(1, 2)
    a, b = full.loglikelihood(requests), bf16.loglikelihood(requests)
    assert all(math.isfinite(x) for x, _ in b)
    assert max(abs(x - y) for (x, _), (y, _) in zip(a, b)) < 0.1
    assert len(bf16.generate([GenerationRequest("abc", 5)])[0]) > 0
    assert len(bf16.loglikelihood_rolling([RollingRequest("some text")])[0]) == len("some text") - 1
