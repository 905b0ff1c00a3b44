"""Where a session's own tasks come from: the ``pytest_kick_tasks`` hook (conftest.py, plugins), the
``pytest_kick.tasks`` entry-point group (installed task packages), and task files (``--kick-task-file``).
Each task is paired with where it came from, so a bad one is named in the error."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from pytest_kick import tasks
from pytest_kick.errors import KickError

GROUP = "pytest_kick.tasks"


def _as_tasks(value, where: str) -> list:
    """A task, a list of tasks, or a callable (class, factory) giving either."""
    if value is None:
        return []
    if hasattr(value, "evaluate") and hasattr(value, "name") and not isinstance(value, type):
        return [value]
    if callable(value):
        try:
            return _as_tasks(value(), where)
        except KickError:
            raise
        except Exception as err:
            raise KickError(f"{where}: building its tasks failed: {type(err).__name__}: {err}") from None
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _as_tasks(v, where)]
    raise KickError(f"{where}: gave {value!r}, not a task or a list of tasks")


def from_hook(config) -> list[tuple[object, str]]:
    """The tasks every ``pytest_kick_tasks(config)`` implementation returns, each implementation called once."""
    found = []
    for impl in reversed(config.hook.pytest_kick_tasks.get_hookimpls()):  # registration order
        where = f"pytest_kick_tasks in {impl.plugin_name}"
        try:
            result = impl.function(**{name: config for name in impl.argnames})
        except KickError as err:
            raise KickError(f"{where}: {err}") from None
        found.extend((task, where, _source(task) or _source(impl.function)) for task in _as_tasks(result, where))
    return found


def _source(obj) -> tuple[str, int] | None:
    """(file, 1-based line) where a task's class, or a function, is defined; None when Python cannot say (a
    task class of the plugin itself, one built from the common shapes, is no help to the user)."""
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
    try:
        path = inspect.getsourcefile(target)
        line = inspect.getsourcelines(target)[1]
    except (OSError, TypeError):
        return None
    if path is None or Path(path).resolve().is_relative_to(Path(__file__).resolve().parent):
        return None
    return path, line


def from_entry_points() -> list[tuple[object, str]]:
    """The tasks of installed packages: entry points of group ``pytest_kick.tasks`` naming a task, a list of
    tasks, or a callable returning either."""
    from importlib.metadata import entry_points

    found = []
    for point in entry_points(group=GROUP):
        where = f"entry point {point.name} = {point.value} (group {GROUP})"
        try:
            value = point.load()
        except Exception as err:
            raise KickError(f"{where}: cannot be loaded: {type(err).__name__}: {err}") from None
        found.extend((task, where, _source(task) or _source(value)) for task in _as_tasks(value, where))
    return found


def from_files(paths: list[Path]) -> list[tuple[object, str]]:
    from pytest_kick.tasks import declarative

    return [(task, str(path), _declared(task, path)) for path in paths for task in declarative.load(path)]


def _declared(task, path: Path) -> tuple[str, int]:
    """(task file, line of the task's entry): a file task's ``where`` is ``path:line``."""
    line = re.search(r":(\d+)$", str(getattr(task, "where", "")))
    return str(path), int(line.group(1)) if line else 1


def register(config, values: dict, origins) -> None:
    """Join the session's own tasks to the registry: every pytest_kick_tasks hook, every installed entry point
    of group pytest_kick.tasks, every --kick-task-file. Only when the plugin is on (or for --help's list):
    a run without --kick-* options loads nothing. A KickError names where the bad task came from."""
    if values.get("model") is None and not config.option.help:
        tasks.use([])
        return
    files = []
    if values.get("task-file"):
        files = [origins.path("task-file", f.strip()) for f in values["task-file"].split(",") if f.strip()]
    found = from_hook(config) + from_entry_points() + from_files(files)
    tasks.use(found)
    if config.option.help:
        _list_tasks_in_help(config)


def _list_tasks_in_help(config) -> None:
    """``pytest --help`` lists the registered tasks in --kick-tasks' help (its text was fixed at import)."""
    extra = tasks.registered()
    parser = getattr(getattr(config, "_parser", None), "optparser", None)
    if not extra or parser is None:
        return
    for action in parser._actions:
        if "--kick-tasks" in action.option_strings:
            action.help = f"{action.help} Registered here: {', '.join(extra)}."
