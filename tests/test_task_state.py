"""A task holds no per-run state: one registered instance serves every run of a process (pytester sessions, a
search evaluating many levels, runs with other settings or data), so what a run needs travels in what ``split`` and
``evaluate`` take and return, and using a task leaves it as it was."""

import copy
import dataclasses
import json

import pytest

from pytest_kick import tasks
from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.requests import LoglikelihoodRequest
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.choice import MultipleChoice
from pytest_kick.tasks.mmlu import MMLU, by_subject
from pytest_kick.tasks.probe import uses_shots


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the bundled data, never the hub


def snapshot(task) -> dict:
    """Each attribute of the task: the object itself, and a shallow copy of a dict, list or set (to see it filled)."""
    return {k: (v, copy.copy(v) if isinstance(v, (dict, list, set)) else None) for k, v in vars(task).items()}


def assert_unchanged(task, before: dict) -> None:
    after = vars(task)
    assert after.keys() == before.keys(), f"attributes added or removed: {set(after) ^ set(before)}"
    for key, (value, contents) in before.items():
        assert after[key] is value, f"{key} was replaced"
        assert contents is None or after[key] == contents, f"{key} was changed in place"


class Asking:
    """A runner that cannot count tokens (so every shot is kept) and answers each log-likelihood request alike."""

    max_length = None

    def __init__(self):
        self.asked = []

    def token_counts(self, texts):
        return None

    def __call__(self, requests):
        self.asked += requests
        return [(0.0, False) if isinstance(r, LoglikelihoodRequest) else "A" for r in requests]


def test_one_mmlu_task_gives_interleaved_runs_their_own_shots_and_items():
    """Run A splits, run B splits other data with other settings, then A evaluates: A's prompts hold A's shots."""
    task = MMLU()
    data_a = task.load(Settings())
    renamed = tuple(dataclasses.replace(d, question="other data: " + d.question) for d in data_a.dev)
    data_b = dataclasses.replace(data_a, dev=renamed, source="another copy", content_hash="b")
    run_a, run_b = Settings(shots=2, limit=6), Settings(shots=3, limit=4, seed=1, protocol="kick")
    shots_a, items_a = task.split(data_a, run_a)
    shots_b, items_b = task.split(data_b, run_b)
    dev_a = by_subject(data_a.dev)
    assert shots_a == [s for subject in dict.fromkeys(i.subject for i in items_a) for s in dev_a[subject][:2]]
    assert len(shots_b) == 3 * len({i.subject for i in items_b}) and all(
        s.question.startswith("other data") for s in shots_b
    )
    assert (shots_a, items_a) == task.split(data_a, run_a)  # the same run split again: the same shots and items
    run = Asking()
    task.evaluate(items_a, shots_a, run_a, run)
    contexts = [r.context for r in run.asked[::4]]
    assert contexts == [task.prompt(i, dev_a[i.subject][:2]) for i in items_a]
    assert not any("other data" in c for c in contexts)


def test_split_evaluate_and_the_shots_probe_leave_an_mmlu_task_as_it_was(tiny):
    model, tokenizer = tiny
    task = MMLU()
    dataset = task.load(Settings())
    before = snapshot(task)
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=4)
    engine.max_length = 500  # some questions lose shots: fitting runs
    for settings in (Settings(shots=1, limit=3), Settings(shots=2, limit=2, protocol="kick")):
        shots, items = task.split(dataset, settings)
        task.evaluate(items, shots, settings, Runner(engine))
        task.fit(items, shots, settings, Runner(engine))
        assert uses_shots(task, dataset, settings)
    assert_unchanged(task, before)


def test_the_shots_probe_leaves_every_bundled_task_as_it_was():
    for name in tasks.BUNDLED:
        task = tasks.get(name)
        dataset = task.load(Settings())
        before = snapshot(task)
        for settings in (Settings(), Settings(shots=1, limit=5)):
            uses_shots(task, dataset, settings)
            task.split(dataset, settings)
        assert_unchanged(task, before)


def test_a_multiple_choice_floor_is_its_data_files_and_no_run_changes_it(tmp_path):
    rows = [{"question": f"q{k}", "choices": [f"c{c}" for c in range(2 + k % 3)], "answer": "c0"} for k in range(6)]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = MultipleChoice("mc", tmp_path / "mc.jsonl", template="{question}")
    assert task.floor == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)  # every item of the file, before any run
    dataset = task.load(Settings())
    before = snapshot(task)
    _, one = task.split(dataset, Settings(limit=1))
    _, items = task.split(dataset, Settings())
    run = Asking()
    task.evaluate(one, [], Settings(), run)
    assert uses_shots(task, dataset, Settings()) is False
    assert_unchanged(task, before)
    assert len(items) == 6 and len(one) == 1
