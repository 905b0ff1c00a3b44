"""--kick-tolerance: how far a compressed score may fall behind dense, as a default and per task (or family)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pytest_kick import tasks
from pytest_kick.config_values import split_list
from pytest_kick.errors import KickError
from pytest_kick.gate import Tolerance


@dataclass(frozen=True)
class ToleranceSpec:
    default: Tolerance
    per_task: dict = field(default_factory=dict)

    def for_task(self, task: str) -> Tolerance:
        """A variant's own tolerance, else its family's (icrqa=10% covers icrqa:open), else the default."""
        if task in self.per_task:
            return self.per_task[task]
        return self.per_task.get(task.split(":", 1)[0], self.default)


def parse_tolerance_value(flag: str, text: str) -> Tolerance:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|pp)\s*", text)
    if not match:
        raise KickError(f"{flag}: {text!r} is not a tolerance; write 5% (relative) or 3pp (absolute)")
    number, unit = float(match.group(1)), match.group(2)
    if unit == "%" and not 0 <= number < 100:
        raise KickError(f"{flag}: {text!r}: a relative tolerance must be in [0%, 100%)")
    return Tolerance(number / 100, "relative" if unit == "%" else "absolute")


def parse_tolerance(flag: str, text: str, known_tasks: list[str]) -> ToleranceSpec:
    default = Tolerance(0.05, "relative")
    per_task = {}
    for part in split_list(flag, text):
        if "=" in part:
            task, value = (p.strip() for p in part.split("=", 1))
            if task not in known_tasks and task not in tasks.families():
                raise KickError(f"{flag}: unknown task {task!r} in {part!r}; known: {', '.join(known_tasks)}")
            per_task[task] = parse_tolerance_value(flag, value)
        else:
            default = parse_tolerance_value(flag, part)
    return ToleranceSpec(default, per_task)
