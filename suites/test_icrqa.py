"""LLM-KICK in-context retrieval QA (TriviaQA): closed-book and open-book, one item per variant."""

import pytest


@pytest.mark.kick_task("icrqa")
def test_icrqa(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
