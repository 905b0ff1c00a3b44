"""A pytest plugin the session benchmarks load into each session they time (``-p _grid_probe``, benchmarks/ on
PYTHONPATH): at the end it writes what the runtime knows and the reports do not carry to $KICK_GRID_PROBE (JSON):
per case, what dense-drafted decoding did (Runtime.drafting) and the seconds its whole evaluation took (the
runtime's own timer, model compression excluded), and the tokens each model's local engine generated."""

from __future__ import annotations

import json
import os


def pytest_sessionfinish(session):
    from pytest_kick.fixtures import RUNTIME_KEY

    runtime = session.config.stash.get(RUNTIME_KEY, None)
    path = os.environ.get("KICK_GRID_PROBE")
    if runtime is None or not path:
        return
    drafting = {f"{case.task} {case.label}": record for case, record in runtime.drafts.records.items()}
    evaluated = {}
    for (model, compressor, ratio, task, recovery), (result, per_item) in runtime._compressed.items():
        label = f"{task} {compressor}@{ratio}" + (f"+{recovery}" if recovery else "")
        evaluated[label] = {"seconds": per_item * max(1, len(result.scores)), "items": len(result.scores)}
    emitted = 0
    for model in runtime.config.models:
        engine = runtime.engine(model)
        emitted += getattr(getattr(engine, "tally", None), "emitted", 0)
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"drafting": drafting, "evaluated": evaluated, "emitted": emitted}, out)
