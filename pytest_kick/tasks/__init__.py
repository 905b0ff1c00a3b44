"""LLM-KICK tasks by name. A task knows prompts and scoring, never torch at import time.

The registry holds the bundled tasks, plus the tasks a session registers explicitly with :func:`use`
(from the ``pytest_kick_tasks`` hook, the ``pytest_kick.tasks`` entry points and ``--kick-task-file``;
see pytest_kick/registration.py). Importing this module registers nothing else.

A family with variants (``icrqa``: ``icrqa:closed`` and ``icrqa:open``) registers one Task per variant;
``--kick-tasks icrqa`` selects every variant, ``--kick-tasks icrqa:open`` one of them.
"""

from __future__ import annotations

from typing import Iterable

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
        FactoidQA(),
        MMLU(),
        ICRQA("closed"),
        ICRQA("open"),
        Summarization("small"),
        Summarization("medium"),
        Summarization("large"),
        Instruction("vicuna"),
        Instruction("mtbench"),
        Perplexity(),
    ]


TASKS: dict[str, Task] = {task.name: task for task in _all()}
BUNDLED: tuple[str, ...] = tuple(TASKS)
REQUIRED = ("name", "version", "metric", "higher_is_better", "load", "split", "evaluate", "template_hash")
LOCATIONS: dict[str, tuple[str, int]] = {}  # a registered task -> (file, 1-based line) that declares it


def use(extra: Iterable[tuple]) -> None:
    """Make the registry the bundled tasks plus ``extra`` ((task, where it came from) pairs, or triples with the
    (file, line) declaring it), replacing any earlier session's. A task lacking part of the protocol, or whose
    name is taken, is a KickError naming where it came from."""
    for name in [n for n in TASKS if n not in BUNDLED]:
        del TASKS[name]
    LOCATIONS.clear()
    origin: dict[str, str] = {}
    for task, where, *location in extra:
        missing = [a for a in REQUIRED if not hasattr(task, a)]
        if missing:
            raise KickError(
                f"{where}: {task!r} is not a task: it lacks {', '.join(missing)} (see pytest_kick.api.Task)"
            )
        name = task.name
        if not isinstance(name, str) or not name or "," in name or "=" in name or " " in name:
            raise KickError(f"{where}: task name {name!r} must be a non-empty word (no comma, '=' or space)")
        if name in TASKS:
            first = origin.get(name, "the bundled suite")
            raise KickError(f"{where}: a task named {name!r} is already registered by {first}; rename one")
        if not hasattr(task, "family"):
            try:
                task.family = name.split(":")[0]
            except AttributeError:
                raise KickError(f"{where}: task {name!r} has no family attribute") from None
        if not hasattr(task, "floor"):
            try:
                task.floor = None
            except AttributeError:
                raise KickError(f"{where}: task {name!r} has no floor attribute") from None
        TASKS[name] = task
        origin[name] = where
        if location and location[0]:
            LOCATIONS[name] = location[0]


def location(name: str) -> tuple[str, int] | None:
    """(file, 1-based line) of the task file entry, hook or entry point declaring a registered task."""
    return LOCATIONS.get(name)


def registered() -> list[str]:
    """The names of the tasks registered beyond the bundled suite, in registration order."""
    return [n for n in TASKS if n not in BUNDLED]


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


def score_range(task: Task) -> tuple[float, float] | None:
    """The range every item's score lies in (the task's ``score_range``, else its scorer's); None when unknown
    (perplexity's log-loss): the sequential gate then judges the whole budget by ``ci``."""
    found = getattr(task, "score_range", None)
    if found is None:
        found = getattr(getattr(task, "scorer", None), "score_range", None)
    return None if found is None else (float(found[0]), float(found[1]))


def figure(task: Task, scores) -> float:
    """The task's figure for per-item scores: the mean, or the task's ``figure`` of the mean."""
    mean = sum(scores) / len(scores) if scores else 0.0
    convert = getattr(task, "figure", None)
    return convert(mean) if convert and scores else mean
