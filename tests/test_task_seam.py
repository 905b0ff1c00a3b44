"""The engine seam: tasks reach a model only through requests, never through torch; the runner answers
mixed request kinds in order and in rounds."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_kick.tasks
from pytest_kick import tasks
from pytest_kick.engines.base import Runner
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from pytest_kick.tasks.base import OneRequestPerItem, Settings

TASK_DIR = Path(pytest_kick.tasks.__file__).parent
HEAVY = ("torch", "transformers")


def test_no_task_module_imports_torch_anywhere_in_its_source():
    """Static: no import of torch or transformers in any task module, not even inside a function."""
    found = []
    for path in sorted(TASK_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in HEAVY]
    assert len(list(TASK_DIR.glob("*.py"))) >= 8
    assert found == []


def test_importing_and_loading_every_task_leaves_torch_unimported():
    """Dynamic: a fresh interpreter imports every task module and loads every bundled task's data."""
    modules = [f"pytest_kick.tasks.{m.name}" for m in pkgutil.iter_modules([str(TASK_DIR)])]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from pytest_kick import tasks\n"
        "from pytest_kick.tasks.base import Settings\n"
        "for task in tasks.TASKS.values():\n"
        "    task.split(task.load(Settings(limit=2)), Settings(limit=2))\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert len(modules) >= 8 and json.loads(done.stdout) == []


def test_every_bundled_task_evaluates_through_requests_only():
    for task in tasks.TASKS.values():
        assert callable(getattr(task, "evaluate", None)), task.name


class Recorder:
    """An engine answering from the requests' text: enough to test the runner's dispatch and order."""

    name = "recorder"

    def __init__(self):
        self.calls = []

    def generate(self, requests, progress=None):
        self.calls.append(("generate", len(requests)))
        if progress:
            progress(len(requests), len(requests))
        return [f"gen:{r.prompt}" for r in requests]

    def loglikelihood(self, requests, progress=None):
        self.calls.append(("loglikelihood", len(requests)))
        return [(-float(len(r.continuation)), True) for r in requests]

    def loglikelihood_rolling(self, requests, progress=None):
        self.calls.append(("rolling", len(requests)))
        return [tuple(-1.0 for _ in r.text) for r in requests]


def test_runner_answers_mixed_kinds_in_order_one_call_per_kind():
    engine, ticks = Recorder(), []
    run = Runner(engine, lambda done, total: ticks.append((done, total)))
    requests = [
        GenerationRequest("a", 1),
        LoglikelihoodRequest("c", " xy"),
        RollingRequest("abc"),
        GenerationRequest("b", 1),
    ]
    assert run(requests) == ["gen:a", (-3.0, True), (-1.0, -1.0, -1.0), "gen:b"]
    assert sorted(engine.calls) == [("generate", 2), ("loglikelihood", 1), ("rolling", 1)]
    assert run([GenerationRequest("z", 1)]) == ["gen:z"]  # a second round continues the count
    assert ticks == [(2, 4), (5, 5)]
    assert run.max_length is None and run.token_counts(["x"]) is None
    with pytest.raises(TypeError, match="not a request"):
        run(["plain text"])


def test_one_request_per_item_scores_each_answer():
    class Echo(OneRequestPerItem):
        name = "echo"

        def requests(self, items, shots, settings):
            return [GenerationRequest(i, 1) for i in items]

        def score(self, item, request, answer, settings):
            return float(answer == f"gen:{item}")

    scores, outputs = Echo().evaluate(["p", "q"], [], Settings(), Runner(Recorder()))
    assert scores == [1.0, 1.0] and outputs == ["gen:p", "gen:q"]
