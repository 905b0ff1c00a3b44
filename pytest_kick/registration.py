"""Where a session's own extensions come from. Tasks: the ``pytest_kick_tasks`` hook (conftest.py, plugins), the
``pytest_kick.tasks`` entry-point group (installed task packages), and task files (``--kick-task-file``); each
task is paired with where it came from, so a bad one is named in the error. Compressors, engines, judges and
recovery methods: their entry-point groups (``pytest_kick.compressors`` ..., extensions.py)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from pytest_kick import extensions, tasks
from pytest_kick.errors import KickError

GROUP = extensions.tasks.group  # pytest_kick.tasks


def _is_task(value) -> bool:
    return hasattr(value, "evaluate") and hasattr(value, "name")


def _as_tasks(value, where: str) -> list:
    """A task, a list of tasks, or a callable (class, factory) giving either."""
    return extensions.as_list(value, where, _is_task, "a task")


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
    found = []
    for value, where in extensions.entry_points(GROUP):
        found.extend((task, where, _source(task) or _source(value)) for task in _as_tasks(value, where))
    return found


def from_files(paths: list[Path]) -> list[tuple[object, str]]:
    from pytest_kick.tasks import declarative  # lazy: the file-task modules, ~10 ms on every pytest run

    return [(task, str(path), _declared(task, path)) for path in paths for task in declarative.load(path)]


def _declared(task, path: Path) -> tuple[str, int]:
    """(task file, line of the task's entry): a file task's ``where`` is ``path:line``."""
    line = re.search(r":(\d+)$", str(getattr(task, "where", "")))
    return str(path), int(line.group(1)) if line else 1


def register(config, values: dict, origins) -> None:
    """Join the session's own extensions to the registries: every pytest_kick_tasks hook, every installed entry
    point of the pytest_kick.* groups (extensions.GROUPS), every --kick-task-file. Only when the plugin is on (or
    for --help's list): a run without --kick-* options loads nothing. A KickError names where a bad one came
    from."""
    if values.get("model") is None and not config.option.help:
        tasks.use([])
        extensions.reset()
        return
    extensions.load_installed()
    files = []
    if values.get("task-file"):
        files = [origins.path("task-file", f.strip()) for f in values["task-file"].split(",") if f.strip()]
    found = from_hook(config) + from_entry_points() + from_files(files)
    tasks.use(found)
    if config.option.help:
        _list_in_help(config, "--kick-tasks", tasks.registered())
        _list_in_help(config, "--kick-compressor", extensions.compressors.registered())
        _list_in_help(config, "--kick-engine", extensions.engines.registered())
        _list_in_help(config, "--kick-judge", [extensions.judges.get(n).form for n in extensions.judges.registered()])
        _list_in_help(config, "--kick-recover", extensions.recovery.registered())


def _list_in_help(config, flag: str, extra: list[str]) -> None:
    """``pytest --help`` lists the registered extensions in their option's help (its text was fixed at import)."""
    parser = getattr(getattr(config, "_parser", None), "optparser", None)
    if not extra or parser is None:
        return
    for action in parser._actions:
        if flag in action.option_strings:
            action.help = f"{action.help} Registered here: {', '.join(extra)}."
