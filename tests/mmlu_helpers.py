"""Shared fixtures and helpers of the MMLU tests (test_mmlu*.py). Test modules bind the fixtures by name."""

import pytest

from pytest_kick.engines.base import Runner
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import MMLU, MMLUItem, by_subject


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the bundled data, never the hub


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: these forward passes are small, and on a busy 2-core machine two threads contend
    (measured: SmolLM2 on 300 tokens 2 s with one thread, 13-15 s with two, while other jobs ran)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundled():
    task = MMLU()
    dataset = task.load(Settings())
    return task, dataset, by_subject(dataset.dev)


def item(subject="anatomy", number=0, answer=0, question="Q?", choices=("w", "x", "y", "z")) -> MMLUItem:
    return MMLUItem(f"mmlu/test/{subject}/{number}", question, ("ABCD"[answer],), subject, tuple(choices), answer)


def pick(dataset, per_subject: dict[str, int]) -> list[MMLUItem]:
    """The first n test items of each named subject, in dataset order."""
    left = dict(per_subject)
    chosen = []
    for i in dataset.examples:
        if left.get(i.subject, 0) > 0:
            chosen.append(i)
            left[i.subject] -= 1
    return chosen


class Recording(Runner):
    """A runner that keeps every request and answer (to compare letter log-likelihoods)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.asked, self.answers = [], []

    def __call__(self, requests):
        answers = super().__call__(requests)
        self.asked += requests
        self.answers += answers
        return answers
