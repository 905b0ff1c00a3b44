"""LLM-KICK tasks by name. A task knows prompts and scoring, never torch."""

from __future__ import annotations

from pytest_kick.tasks.base import Task
from pytest_kick.tasks.factoid_qa import FactoidQA

TASKS: dict[str, Task] = {task.name: task for task in (FactoidQA(),)}


def names() -> list[str]:
    return list(TASKS)


def get(name: str) -> Task:
    return TASKS[name]
