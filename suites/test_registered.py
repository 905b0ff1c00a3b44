"""The test of every registered task (pytest_kick_tasks hook, entry point, --kick-task-file) that has no test of
its own: one case per (task, model, compressor, ratio), as in the bundled suite."""


def test_registered(kick_case, kick_baseline, kick_evaluate, kick_gate):
    dense = kick_baseline(kick_case)
    compressed = kick_evaluate(kick_case)
    kick_gate(kick_case, dense, compressed)
