"""LLM-KICK factoid QA (FreebaseQA): does the compressed model still answer what dense answers?"""

import pytest


@pytest.mark.kick_task("factoid_qa")
def test_factoid_qa(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
