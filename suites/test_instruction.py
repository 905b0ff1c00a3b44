"""LLM-KICK instruction following: Vicuna-bench and MT-Bench (two turns), one item per variant."""

import pytest


@pytest.mark.kick_task("instruction")
def test_instruction(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
