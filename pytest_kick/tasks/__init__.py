"""LLM-KICK tasks by name. A task knows prompts and scoring, never torch at import time.

A family with variants (``icrqa``: ``icrqa:closed`` and ``icrqa:open``) registers one Task per variant;
``--kick-tasks icrqa`` selects every variant, ``--kick-tasks icrqa:open`` one of them.
"""

from __future__ import annotations

from pytest_kick.errors import KickError
from pytest_kick.tasks.base import Task
from pytest_kick.tasks.factoid_qa import FactoidQA
from pytest_kick.tasks.icrqa import ICRQA
from pytest_kick.tasks.instruction import Instruction
from pytest_kick.tasks.mmlu import MMLU
from pytest_kick.tasks.perplexity import Perplexity
from pytest_kick.tasks.summarization import Summarization


def _all() -> list[Task]:
    """The LLM-KICK tasks in the paper's order, perplexity (the contrast) last."""
    return [
        FactoidQA(), MMLU(), ICRQA("closed"), ICRQA("open"),
        Summarization("small"), Summarization("medium"), Summarization("large"),
        Instruction("vicuna"), Instruction("mtbench"), Perplexity(),
    ]


TASKS: dict[str, Task] = {task.name: task for task in _all()}


def names() -> list[str]:
    """Every task and variant name, in registry order."""
    return list(TASKS)


def families() -> list[str]:
    return list(dict.fromkeys(task.family for task in TASKS.values()))


def variants(family: str) -> list[str]:
    return [name for name, task in TASKS.items() if task.family == family]


def get(name: str) -> Task:
    return TASKS[name]


def expand(name: str) -> list[str]:
    """The variant names a --kick-tasks entry selects: a family gives all its variants."""
    if name in TASKS:
        return [name]
    if name in families():
        return variants(name)
    raise KickError(f"unknown task {name!r}; known: {', '.join(spellings())}")


def spellings() -> list[str]:
    """What --kick-tasks accepts: families and, for families with variants, family:variant."""
    found = []
    for family in families():
        found.append(family)
        found.extend(v for v in variants(family) if v != family)
    return found


def figure(task: Task, scores) -> float:
    """The task's figure for per-item scores: the mean, or the task's ``figure`` of the mean."""
    mean = sum(scores) / len(scores) if scores else 0.0
    convert = getattr(task, "figure", None)
    return convert(mean) if convert and scores else mean
