"""LLM-KICK in-context summarization (CNN/DailyMail): small, medium and large stories, one item per bucket."""

import pytest


@pytest.mark.kick_task("summarization")
def test_summarization(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
