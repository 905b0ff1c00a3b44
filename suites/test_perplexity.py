"""Perplexity on WikiText-2, for contrast: it often stays "matching" where the knowledge tasks fail."""

import pytest


@pytest.mark.kick_task("perplexity")
def test_perplexity(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
