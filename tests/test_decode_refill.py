"""Generation keeps its batch full: rows that stop leave it and waiting prompts take their places, without
changing any answer (tiny-random-llama; engines/decode.py)."""

import pytest

from pytest_kick.engines import decode, passes
from pytest_kick.engines.draft import Drafts
from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.requests import GenerationRequest

PROMPTS = [f"Question number {i}: what comes after {i}? " + "x " * (i % 5) for i in range(14)]
BUDGETS = [1, 9, 3, 12, 2, 5, 2, 7, 11, 1, 4, 8, 6, 10]  # rows stop at different steps


@pytest.fixture
def counted(tiny, monkeypatch):
    """(model, tokenizer, counts): how often the batch took newcomers in, and how many forward passes ran."""
    model, tokenizer = tiny
    counts = {"joins": 0, "forwards": 0}
    join, forward = decode.Rows.join, model.forward

    def counting_join(self, other):
        counts["joins"] += 1
        return join(self, other)

    def counting_forward(*args, **kwargs):
        counts["forwards"] += 1
        return forward(*args, **kwargs)

    monkeypatch.setattr(decode.Rows, "join", counting_join)
    monkeypatch.setattr(model, "forward", counting_forward)
    return model, tokenizer, counts


def test_a_batch_refills_as_rows_stop_and_no_answer_changes(counted):
    model, tokenizer, counts = counted
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)]
    alone = [Engine(model, tokenizer, "cpu", 1).generate_ids([r])[0] for r in requests]
    assert [len(a) for a in alone] == BUDGETS  # the random model emits no EOS this early

    counts.update(joins=0, forwards=0)
    refilled = Engine(model, tokenizer, "cpu", 4).generate_ids(requests)
    assert counts["joins"] > 0
    assert refilled == alone
    with_refill = counts["forwards"]

    counts.update(joins=0, forwards=0)  # batch after batch, each running until its last row stops
    assert Engine(model, tokenizer, "cpu", 4, refill=False).generate_ids(requests) == alone
    assert counts["joins"] == 0
    assert with_refill < counts["forwards"]  # a full batch needs fewer steps for the same tokens


def test_sliding_window_models_decode_batch_after_batch(counted, monkeypatch):
    """A sliding layer keeps only its last tokens: two of its caches cannot be joined, so no refill."""
    model, tokenizer, counts = counted
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)]
    refilled = Engine(model, tokenizer, "cpu", 4).generate_ids(requests)
    counts.update(joins=0)
    monkeypatch.setattr(passes, "packable", lambda model: False)
    assert Engine(model, tokenizer, "cpu", 4).generate_ids(requests) == refilled
    assert counts["joins"] == 0


def test_refill_on_a_shared_prefix_equals_generation_in_full(counted):
    model, tokenizer, counts = counted
    shots = "".join(f"Q: what is {k} + {k}?\nA: {2 * k}\n\n" for k in range(6))
    requests = [
        GenerationRequest(shots + f"Q: what is {q}?\nA:", n)
        for q, n in zip(["x", "yy", "a b c", "dddd", "e", "ff ff"], [2, 7, 1, 5, 6, 3])
    ]
    on = Engine(model, tokenizer, "cpu", 2, reuse_prefix=True).generate_ids(requests)
    assert counts["joins"] > 0
    off = Engine(model, tokenizer, "cpu", 1, reuse_prefix=False).generate_ids(requests)
    assert on == off


def test_stop_strings_end_rows_inside_a_refilling_batch(counted):
    model, tokenizer, counts = counted
    free = Engine(model, tokenizer, "cpu", 1).generate([GenerationRequest(p, 10) for p in PROMPTS[:6]])
    stops = [(text[3],) if len(text) > 3 else () for text in free]
    requests = [GenerationRequest(p, 10, stop=s) for p, s in zip(PROMPTS[:6], stops)]
    batched = Engine(model, tokenizer, "cpu", 2).generate(requests)
    assert batched == [Engine(model, tokenizer, "cpu", 1).generate([r])[0] for r in requests]
    assert any(len(b) < len(f) for b, f in zip(batched, free))  # the stop strings did end rows early


def test_progress_counts_finished_rows(tiny):
    model, tokenizer = tiny
    seen = []
    Engine(model, tokenizer, "cpu", 4).generate(
        [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)],
        progress=lambda done, total: seen.append((done, total)),
    )
    done = [d for d, _ in seen]
    assert seen[-1] == (len(PROMPTS), len(PROMPTS))
    assert all(0 < b - a <= 4 for a, b in zip([0] + done, done))


def test_tokens_equal_a_plain_greedy_loop_without_cache(tiny):
    """Positions, masks and the cache carried across refills: every token is the argmax of a full forward pass
    over the prompt and the tokens before it, with nothing batched or cached."""
    import torch

    model, tokenizer = tiny
    engine = Engine(model, tokenizer, "cpu", 3)
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS[:7], [6, 2, 5, 1, 4, 3, 6])]
    got = engine.generate_ids(requests)
    for request, tokens in zip(requests, got):
        ids = engine.prompt_ids(request)
        want = []
        with torch.no_grad():
            for _ in range(request.max_new_tokens):
                want.append(int(model(torch.tensor([ids + want])).logits[0, -1].argmax()))
        assert tokens == want


def test_the_key_value_budget_bounds_the_batch_and_changes_no_answer(counted, monkeypatch):
    """With a budget of about two rows' cache, the batch never holds more than its plan allows (rows x the positions
    it may reach), yet every answer is the unbounded batch's."""
    from pytest_kick.engines import kv_budget

    model, tokenizer, counts = counted
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)]
    free = Engine(model, tokenizer, "cpu", 8).generate_ids(requests)
    per = kv_budget.position_bytes(model)
    cfg = model.config
    assert per == 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    widest = max(len(Engine(model, tokenizer, "cpu").prompt_ids(r)) for r in requests) + max(BUDGETS)
    monkeypatch.setattr(kv_budget, "CACHE_BYTES", 2 * widest * per)
    held = []
    emit = decode.Decoder._emit

    def watched(self, rows, *args):
        held.append(sum(layer.keys.nbytes + layer.values.nbytes for layer in rows.cache.layers))
        return emit(self, rows, *args)

    monkeypatch.setattr(decode.Decoder, "_emit", watched)
    assert Engine(model, tokenizer, "cpu", 8).generate_ids(requests) == free
    assert max(held) <= kv_budget.CACHE_BYTES and counts["joins"] > 0  # still refilling, within the budget


def test_an_empty_batch_admits_its_first_prompt_whatever_the_budget(monkeypatch):
    from pytest_kick.engines import kv_budget

    monkeypatch.setattr(kv_budget, "CACHE_BYTES", 1000)
    lengths, budgets = {0: 50, 1: 40, 2: 10}, {0: 10, 1: 10, 2: 10}
    assert kv_budget.admitted([0, 1, 2], lengths, budgets, 0, 0, 0, per=10) == 1  # 60 positions x 10 > 1000 alone
    assert kv_budget.admitted([0, 1, 2], lengths, budgets, 0, 0, 0, per=1) == 3  # 3 x 60 <= 1000
    assert kv_budget.admitted([2], lengths, budgets, 3, 300, 20, per=1) == 0  # 4 rows x 320 > 1000: not now
    monkeypatch.setattr(kv_budget, "CACHE_BYTES", None)
    assert kv_budget.admitted([0, 1, 2], lengths, budgets, 0, 0, 0, per=10) == 3


def test_prompt_passes_hold_at_most_pass_tokens_padded_tokens(monkeypatch):
    from pytest_kick.engines import kv_budget

    monkeypatch.setattr(kv_budget, "PASS_TOKENS", 100)
    lengths = {0: 30, 1: 20, 2: 40, 3: 120, 4: 10, 5: 10}
    passes_ = kv_budget.prompt_passes([0, 1, 2, 3, 4, 5], lengths)
    assert passes_ == [[0, 1], [2], [3], [4, 5]]  # 3 x 40 > 100; 120 alone; then 2 x 10
    assert sum(passes_, []) == [0, 1, 2, 3, 4, 5]
    monkeypatch.setattr(kv_budget, "PASS_TOKENS", None)
    assert kv_budget.prompt_passes([0, 1, 2], lengths) == [[0, 1, 2]]


@pytest.mark.parametrize("drafted", [False, True])
def test_bounded_prompt_passes_change_no_answer(tiny, monkeypatch, drafted):
    """Prompts admitted together are fed in passes of at most PASS_TOKENS padded tokens (one prompt alone when it is
    longer), plain and drafted, and every answer is the one-pass batch's."""
    from pytest_kick.engines import kv_budget

    model, tokenizer = tiny
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)]
    dense = Engine(model, tokenizer, "cpu", 8)
    dense.record = Drafts()
    free = dense.generate_ids(requests)
    widths = []
    prefill = decode.Decoder._prefill

    def watched(self, prompts, indices, prefix, shared, proposals=None):
        widths.append(len(prompts) * max(len(p) - shared for p in prompts))
        return prefill(self, prompts, indices, prefix, shared, proposals)

    monkeypatch.setattr(decode.Decoder, "_prefill", watched)
    longest = max(len(dense.prompt_ids(r)) for r in requests)
    monkeypatch.setattr(kv_budget, "PASS_TOKENS", 2 * longest)
    bounded = Engine(model, tokenizer, "cpu", 8)
    if drafted:
        bounded.drafts = dense.record
    assert bounded.generate_ids(requests) == free
    assert widths and max(widths) <= 2 * longest and len(widths) > 2
    if drafted:
        assert bounded.tally.proposed > 0
