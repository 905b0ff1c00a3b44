"""The local engine: log-likelihood (direct computation, prefix reuse on and off, head only at the scored
positions), rolling log-likelihood and bfloat16."""

import math

import engine_helpers
import pytest
from engine_helpers import PREFIX_TOLERANCE, PROMPTS, direct_logprobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

engines = engine_helpers.engines  # the fixture


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
