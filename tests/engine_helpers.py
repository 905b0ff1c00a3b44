"""Shared prompts, fixtures and helpers of the local engine tests (test_engine*.py)."""

import pytest

from pytest_kick.engines.local import LocalEngine as Engine

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
