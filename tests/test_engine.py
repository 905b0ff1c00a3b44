"""The engine: batch invariance, stop strings, token budgets, log-likelihood."""

import math

import pytest

from pytest_kick.engine import Engine
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest

PROMPTS = [
    "Please give answer to this question: Who wrote Hamlet?\nThe answer is ",
    "Q: 2+2?\nA:",
    "A much longer prompt, so that left padding has real work to do in a mixed batch of requests: x y z",
    "short",
    "",
] + [f"Question number {i}: what comes after {i}?" for i in range(15)]


@pytest.fixture(scope="module")
def engines(tiny):
    model, tokenizer = tiny
    return Engine(model, tokenizer, "cpu", batch_size=1), Engine(model, tokenizer, "cpu", batch_size=16)


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
    fixed, factor, free = sixteen.generate_ids([
        GenerationRequest(prompt, 5), GenerationRequest(prompt, 50, length_factor=2), GenerationRequest(prompt, 50)])
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


def test_progress_reports_every_batch(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, "cpu", batch_size=8)
    seen = []
    engine.generate([GenerationRequest(p, 2) for p in PROMPTS], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(8, 20), (16, 20), (20, 20)]


def test_loglikelihood_is_batch_invariant_and_matches_a_direct_computation(engines, tiny):
    import torch

    model, tokenizer = tiny
    one, sixteen = engines
    requests = [LoglikelihoodRequest(p, " yes") for p in PROMPTS[:4]] + [LoglikelihoodRequest("Answer:", " B")]
    r1, r16 = one.loglikelihood(requests), sixteen.loglikelihood(requests)
    for (a, ga), (b, gb) in zip(r1, r16):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb
    ctx = tokenizer("Answer:").input_ids
    cont = tokenizer(" B", add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
    direct = sum(logits[len(ctx) - 1 + k, t].item() for k, t in enumerate(cont))
    assert r16[-1][0] == pytest.approx(direct, abs=1e-4)
    assert all(math.isfinite(v) and v < 0 for v, _ in r16)
