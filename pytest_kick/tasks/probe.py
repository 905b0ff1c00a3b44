"""Which run-wide settings a task actually uses, found from the task itself (no list of task names to keep up).

``--kick-shots`` is used by a task when it changes what the task asks: the shots or the evaluated items its
``split`` gives, or its prompt (``template_hash``, which by the cache rules covers everything that changes an
answer). A task whose shots come from its own definition (a task file's ``shots``) or that has none does not use
it, and is told so instead of being run as if it had."""

from __future__ import annotations

import dataclasses

from pytest_kick.tasks.base import Dataset, Settings


def uses_shots(task, dataset: Dataset, settings: Settings) -> bool:
    """Whether ``--kick-shots`` (``settings.shots``, or 2 when it is 0) changes the task's shots, items or prompt.
    A probe that fails counts as "uses" (nothing is claimed). A task keeps no per-run state (one registered instance
    serves every run), so probing leaves it as it was."""
    other = dataclasses.replace(settings, shots=settings.shots or 2)
    none = dataclasses.replace(settings, shots=0)
    try:
        found = [(_ids(task.split(dataset, s)), task.template_hash(s)) for s in (none, other)]
    except Exception:
        return True
    return found[0] != found[1]


def _ids(split) -> tuple:
    shots, items = split
    return tuple(getattr(s, "id", s) for s in shots), tuple(getattr(i, "id", i) for i in items)
