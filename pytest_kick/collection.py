"""What the plugin collects and where it reports it: the bundled suite's directory, which task a suite test
gates, the generic test of registered tasks (claimed by a user's own test of the task), the check that every
selected task got a case, and the place a skip is reported at (the user's test, or a registered task's own
declaration). Helpers of plugin.py's hooks; no hook lives here."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from pytest_kick import tasks
from pytest_kick.cases import KickCase

REGISTERED_SUITE = "test_registered.py"  # in suites/: the test of every registered task without its own
SEARCH_SUITE = "test_search.py"  # in suites/: --kick-search's test, one item per (task, model, compressor)
APPENDED_KEY = pytest.StashKey[bool]()  # the suite directory joined the user's paths (registered tasks only)
CLAIMED_KEY = pytest.StashKey[set]()  # tasks a test outside the generic one gates
COLLECTED_KEY = pytest.StashKey[set]()  # tasks with at least one collected case
UNCOLLECTED_KEY = pytest.StashKey[list]()


def suites_dir() -> Path:
    """The bundled LLM-KICK suite: ``suites/`` in a source tree, ``pytest_kick/suites`` in a wheel."""
    spec = importlib.util.find_spec("pytest_kick.suites")
    if spec is None or not spec.submodule_search_locations:
        raise pytest.UsageError("pytest-kick: the bundled suite (pytest_kick.suites) is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def task_of(metafunc) -> str:
    marker = metafunc.definition.get_closest_marker("kick_task")
    name = marker.args[0] if marker and marker.args else metafunc.function.__name__.removeprefix("test_")
    if name not in tasks.families() and name not in tasks.names():
        raise pytest.UsageError(
            f"pytest-kick: {metafunc.definition.nodeid} gates unknown task {name!r}; "
            f"known: {', '.join(tasks.spellings())}"
        )
    return name


def case_of(item) -> KickCase | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("kick_case") if callspec else None


def declared(item) -> tuple[str, int] | None:
    """Where a registered task gated by the generic suite test is declared (its task file and line, the class
    or hook that registers it): that is where its user looks, not at the plugin's suite file."""
    case = case_of(item)
    if case is None or Path(item.path) != suites_dir() / REGISTERED_SUITE:
        return None
    return tasks.location(case.task)


def call_site(item, excinfo) -> tuple[str, int]:
    """(path, 1-based line) of the innermost traceback entry in the test's own file, else the test's def."""
    own = Path(item.path).resolve()
    for entry in reversed(excinfo.traceback):
        if Path(str(entry.path)).resolve() == own:
            return os.fspath(item.path), entry.lineno + 1
    path, line = item.reportinfo()[:2]
    return os.fspath(path), (line or 0) + 1


# --- a session's own tasks (hook, entry points, task files) ----------------------------------------


def collect_registered_suite(config, kick) -> None:
    """With paths given, registered tasks still get their test: the generic suite file joins the paths
    (after them, so a user's own test of a task, collected first, replaces it). Not with node ids
    (``file::test``), which ask for exactly those tests."""
    wanted = kick.search or any(t in tasks.registered() for t in kick.tasks)
    if wanted and not any("::" in a for a in config.args):
        config.args.append(str(suites_dir()))  # the directory: node ids read suites/test_registered.py::...
        config.stash[APPENDED_KEY] = True


def is_generic(metafunc) -> bool:
    return Path(metafunc.definition.path) == suites_dir() / REGISTERED_SUITE


def registered_choice(metafunc, kick) -> list[str] | None:
    """The variants the generic test gates (selected registered tasks no other test claimed); None for any
    other test, whose task is then recorded as claimed."""
    claimed = metafunc.config.stash.setdefault(CLAIMED_KEY, set())
    if not is_generic(metafunc):
        claimed.update(tasks.expand(task_of(metafunc)))
        return None
    return [t for t in kick.tasks if t in tasks.registered() and t not in claimed]


def check_every_task_collected(config, kick, items) -> None:
    """A task named in --kick-tasks without a single collected case: a usage error when nothing else was
    collected either (not an empty run, exit 5), else a line after "collected N items"."""
    if config.getoption("kick_tasks") is None and config.getini("kick_tasks") in (None, "", []):
        return  # the default selection: a path given by the user narrows it on purpose
    missing = [t for t in kick.tasks if t not in config.stash.get(COLLECTED_KEY, set())]
    if not missing:
        return
    message = (
        f"--kick-tasks selects {', '.join(missing)} but no test of it was collected; run without a path "
        f"(the bundled suite and registered tasks are collected then), or add a test marked "
        f"@pytest.mark.kick_task({missing[0]!r}) using the kick_case fixture"
    )
    if not items:
        raise pytest.UsageError(f"pytest-kick: {message}")
    config.stash[UNCOLLECTED_KEY] = [f"pytest-kick: {message}"]
