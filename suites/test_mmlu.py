"""LLM-KICK multiple-choice reasoning QA (MMLU, 5-shot): is the compressed model still reasoning as dense does?"""

import pytest


@pytest.mark.kick_task("mmlu")
def test_mmlu(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
