"""pytest hooks of pytest-kick, registered through the ``pytest11`` entry point ``kick``.

Hooks only: the options, turning config into a KickConfig, parametrizing suite tests into one item
per (task, model, compressor, ratio), xdist grouping, and the end-of-session summary. Without
--kick-model (or the kick_model ini key) every hook returns at once: no torch import, no network,
no extra collection, no output.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path

import pytest

from pytest_kick import cache_dir
from pytest_kick import config as kick_config
from pytest_kick import extensions, fixtures, hookspecs, registration, search_run, tasks
from pytest_kick.errors import KickError
from pytest_kick.cases import KickCase, cases_for
from pytest_kick.record import Verdict, has, put
from pytest_kick.runtime import Runtime
from pytest_kick.session_report import SessionReport
from pytest_kick.terminal import TerminalUI

CONFIG_KEY = pytest.StashKey["kick_config.KickConfig | None"]()


def pytest_addoption(parser) -> None:
    """Register --kick-* options and their kick_* ini keys."""
    kick_config.add_options(parser)


def pytest_addhooks(pluginmanager) -> None:
    """The hooks of pytest_kick/hookspecs.py (pytest_kick_tasks), for conftest files and plugins."""
    pluginmanager.add_hookspecs(hookspecs)


def suites_dir() -> Path:
    """The bundled LLM-KICK suite: ``suites/`` in a source tree, ``pytest_kick/suites`` in a wheel."""
    spec = importlib.util.find_spec("pytest_kick.suites")
    if spec is None or not spec.submodule_search_locations:
        raise pytest.UsageError("pytest-kick: the bundled suite (pytest_kick.suites) is not installed")
    return Path(list(spec.submodule_search_locations)[0])


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config) -> None:
    """Build the KickConfig (usage error on bad values); when on, point collection at the suite if no
    path was given, group xdist items by compressed variant, and start the session state."""
    config.addinivalue_line("markers", "kick_task(name): the LLM-KICK task a suite test gates")
    config.addinivalue_line("markers", "kick_tolerance(spec): tolerance for this test, e.g. '10%' or '3pp'")
    config.pluginmanager.register(fixtures, "kick-fixtures")
    config.pluginmanager.register(search_run, "kick-search-fixtures")
    if not config.pluginmanager.hasplugin("xdist"):  # kick items carry xdist_group marks either way
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist group (loadgroup scheduling)")
    values, from_ini = kick_config.raw_values(config.getoption, config.getini)
    origins = kick_config.Origins(Path(config.invocation_params.dir), from_ini, config.inipath)
    try:
        registration.register(config, values, origins)
        kick = kick_config.build(values, origins.base_dir, from_ini, config.inipath)
        if kick is not None and not hasattr(config, "workerinput"):  # the controller checked for its workers
            check_session(kick, origins)
        read_only = kick is not None and not cache_dir.prepare(kick.cache_dir)  # once, before any model loads
    except KickError as err:
        raise pytest.UsageError(f"pytest-kick: {err}") from None
    config.stash[CONFIG_KEY] = kick
    if kick is None:
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(suites_dir())]
    else:
        collect_registered_suite(config, kick)
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"  # every item of one (model, compressor, ratio) on one worker
    workerinput = getattr(config, "workerinput", {})
    worker = workerinput.get("workerid")
    run_id = workerinput.get("kick_run_id") or uuid.uuid4().hex  # one id per run, shared with xdist workers
    config.stash[fixtures.RUNTIME_KEY] = Runtime(kick, TerminalUI(config, worker), worker, run_id)
    if read_only:
        TerminalUI(config, worker).message(f"--kick-cache-dir {kick.cache_dir} is read-only: using what it holds")
    config.pluginmanager.register(SessionReport(config, kick), "kick-report")
    if config.pluginmanager.hasplugin("xdist") and not workerinput:
        config.pluginmanager.register(XdistRunId(run_id), "kick-xdist")


def check_session(kick, origins) -> None:
    """What would doom every item, checked once before collection: a KickError becomes a usage error (exit 4).

    The device: --kick-device cuda on a machine without CUDA fails every item the same way. Only cuda and
    mps ask torch (imported here then); auto and cpu always work.
    """
    if kick.device not in ("auto", "cpu"):
        import torch

        from pytest_kick.models.devices import pick_device

        try:
            pick_device(kick.device, None, os.environ, torch.cuda.device_count,
                        lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available())
        except KickError as err:
            reason = str(err).split(": ", 1)[-1]  # pick_device names the flag; the value may come from the ini file
            raise KickError(f"{origins.setting('device', kick.device)}: {reason}") from None


class XdistRunId:
    """Hands the controller's run id to every xdist worker (so --kick-regen rewrites a file once per run)."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def pytest_configure_node(self, node) -> None:
        node.workerinput["kick_run_id"] = self.run_id


def _task_of(metafunc) -> str:
    marker = metafunc.definition.get_closest_marker("kick_task")
    name = marker.args[0] if marker and marker.args else metafunc.function.__name__.removeprefix("test_")
    if name not in tasks.families() and name not in tasks.names():
        raise pytest.UsageError(f"pytest-kick: {metafunc.definition.nodeid} gates unknown task {name!r}; "
                                f"known: {', '.join(tasks.spellings())}")
    return name


def pytest_ignore_collect(collection_path, config):
    """Skip the bundled suite's files of tasks nobody asked for (``suites/test_<task family>.py``)."""
    kick = config.stash.get(CONFIG_KEY, None)
    if kick is None or collection_path.parent != suites_dir() or not collection_path.stem.startswith("test_"):
        return None
    if collection_path.name == SEARCH_SUITE:
        return None if kick.search else True
    if config.stash.get(APPENDED_KEY, False) and collection_path.name != REGISTERED_SUITE:
        return True  # the suite joined the user's paths for registered tasks (and --kick-search) only
    family = collection_path.stem.removeprefix("test_")
    if family in tasks.families() and not any(tasks.get(t).family == family for t in kick.tasks):
        return True
    return None


def pytest_generate_tests(metafunc) -> None:
    """One item per (task variant, model, compressor, ratio), plus one dense item per (variant, model).
    A test of a task not asked for gets a placeholder that pytest_pycollect_makeitem removes."""
    kick = metafunc.config.stash.get(CONFIG_KEY, None)
    if kick is not None and "kick_search_case" in metafunc.fixturenames:  # --kick-search: one per (task, compressor)
        metafunc.parametrize("kick_search_case", [
            pytest.param(case, id=case.id, marks=pytest.mark.xdist_group(case.group))
            for task in kick.tasks for case in search_run.search_cases(task, kick)
        ] or [pytest.param(None, id="not-selected")])
        return
    if kick is None or "kick_case" not in metafunc.fixturenames:
        return
    chosen = registered_choice(metafunc, kick)
    if chosen is None:
        chosen = [v for v in tasks.expand(_task_of(metafunc)) if v in kick.tasks]
    if not chosen:
        metafunc.parametrize("kick_case", [pytest.param(None, id="not-selected")])
        return
    metafunc.parametrize("kick_case", [
        pytest.param(case, id=case.id, marks=pytest.mark.xdist_group(case.group))
        for task in chosen for case in cases_for(task, kick)
    ])


def _case(item) -> KickCase | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("kick_case") if callspec else None


UNSELECTED_KEY = pytest.StashKey[list]()


def _not_selected(item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(k in callspec.params and callspec.params[k] is None
                                        for k in ("kick_case", "kick_search_case"))


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Collect only the cases asked for: a test of a task outside --kick-tasks yields no item at all (not a
    deselected one). A user's own such test is named after collection (pytest_report_collectionfinish)."""
    result = yield
    config = collector.config
    if config.stash.get(CONFIG_KEY, None) is None or not isinstance(result, list):
        return result
    kept = [item for item in result if not _not_selected(item)]
    if len(kept) < len(result) and collector.path.parent != suites_dir():
        marker = next(item for item in result if _not_selected(item)).get_closest_marker("kick_task")
        task = marker.args[0] if marker and marker.args else name.removeprefix("test_")
        config.stash.setdefault(UNSELECTED_KEY, []).append(f"{collector.nodeid}::{name} ({task})")
    return kept


def pytest_report_collectionfinish(config, start_path, items):
    unselected = config.stash.get(UNSELECTED_KEY, [])
    lines = config.stash.get(UNCOLLECTED_KEY, [])
    if unselected:
        lines = [f"pytest-kick: not collected, their task is not in --kick-tasks: {', '.join(unselected)}", *lines]
    return lines or None


def pytest_collection_modifyitems(session, config, items) -> None:
    """Run dense items first, then each compressed variant's items together, so a variant is built once per
    process and shared by every task."""
    kick = config.stash.get(CONFIG_KEY, None)
    if kick is None:
        return
    if not hasattr(config, "workerinput"):
        check_every_task_collected(config, kick, items)
    keep = items

    def order(indexed):
        index, item = indexed
        case = _case(item)
        if case is None:  # searches last: each builds many variants
            searching = getattr(item, "callspec", None) and "kick_search_case" in item.callspec.params
            return (2 if searching else 0, (), index)
        variant = (kick.models.index(case.model), case.compressor is not None,
                   kick.variants.index((case.compressor, case.ratio)) if case.compressor else -1,
                   kick.recover.index(case.recovery) + 1 if case.recovery else 0)  # recovered after compressed
        return (1, variant, index)

    items[:] = [item for _, item in sorted(enumerate(keep), key=order)]
    for item in items:  # so that a case failing before its verdict still appears in every report
        case = _case(item)
        if case is not None:
            put(item, task=case.task, model=case.model_name, compressor=case.compressor or "dense", ratio=case.ratio)
            if case.recovery:
                put(item, recover=case.recovery)


PACKAGE_DIR = Path(__file__).resolve().parent


def pytest_report_teststatus(report, config):
    """A case with too many judge errors has no verdict: it is reported as an error, not as a failure."""
    if report.when == "call" and report.failed and has(report.user_properties, "verdict", Verdict.JUDGE_ERROR):
        return "error", "E", "ERROR"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip raised inside the plugin (an inconclusive case) is reported at the user's test, at the line that
    called the fixture (``suites/test_mmlu.py:9``), not at pytest_kick/fixtures.py."""
    report = yield
    longrepr = report.longrepr
    declared = _declared(item)
    if report.skipped and call.excinfo is not None and isinstance(longrepr, tuple) and len(longrepr) == 3 \
            and Path(longrepr[0]).resolve().is_relative_to(PACKAGE_DIR):
        path, line = declared or _call_site(item, call.excinfo)
        report.longrepr = (path, line, longrepr[2])
    return report


def _declared(item) -> tuple[str, int] | None:
    """Where a registered task gated by the generic suite test is declared (its task file and line, the class
    or hook that registers it): that is where its user looks, not at the plugin's suite file."""
    case = _case(item)
    if case is None or Path(item.path) != suites_dir() / REGISTERED_SUITE:
        return None
    return tasks.location(case.task)


def _call_site(item, excinfo) -> tuple[str, int]:
    """(path, 1-based line) of the innermost traceback entry in the test's own file, else the test's def."""
    own = Path(item.path).resolve()
    for entry in reversed(excinfo.traceback):
        if Path(str(entry.path)).resolve() == own:
            return os.fspath(item.path), entry.lineno + 1
    path, line = item.reportinfo()[:2]
    return os.fspath(path), (line or 0) + 1


# --- a session's own tasks (hook, entry points, task files) ----------------------------------------

REGISTERED_SUITE = "test_registered.py"  # in suites/: the test of every registered task without its own
SEARCH_SUITE = "test_search.py"  # in suites/: --kick-search's test, one item per (task, model, compressor)
APPENDED_KEY = pytest.StashKey[bool]()  # the suite directory joined the user's paths (registered tasks only)
CLAIMED_KEY = pytest.StashKey[set]()  # tasks a test outside the generic one gates
COLLECTED_KEY = pytest.StashKey[set]()  # tasks with at least one collected case


def pytest_unconfigure(config) -> None:
    """The next session (pytester runs in one process) starts from the bundled tasks and entries again."""
    tasks.use([])
    extensions.reset()


def collect_registered_suite(config, kick) -> None:
    """With paths given, registered tasks still get their test: the generic suite file joins the paths
    (after them, so a user's own test of a task, collected first, replaces it). Not with node ids
    (``file::test``), which ask for exactly those tests."""
    wanted = kick.search or any(t in tasks.registered() for t in kick.tasks)
    if wanted and not any("::" in a for a in config.args):
        config.args.append(str(suites_dir()))  # the directory: node ids read suites/test_registered.py::...
        config.stash[APPENDED_KEY] = True


def _is_generic(metafunc) -> bool:
    return Path(metafunc.definition.path) == suites_dir() / REGISTERED_SUITE


def registered_choice(metafunc, kick) -> list[str] | None:
    """The variants the generic test gates (selected registered tasks no other test claimed); None for any
    other test, whose task is then recorded as claimed."""
    claimed = metafunc.config.stash.setdefault(CLAIMED_KEY, set())
    if not _is_generic(metafunc):
        claimed.update(tasks.expand(_task_of(metafunc)))
        return None
    return [t for t in kick.tasks if t in tasks.registered() and t not in claimed]


def pytest_itemcollected(item) -> None:
    case = _case(item)
    if case is not None:
        item.config.stash.setdefault(COLLECTED_KEY, set()).add(case.task)


UNCOLLECTED_KEY = pytest.StashKey[list]()


def check_every_task_collected(config, kick, items) -> None:
    """A task named in --kick-tasks without a single collected case: a usage error when nothing else was
    collected either (not an empty run, exit 5), else a line after "collected N items"."""
    if config.getoption("kick_tasks") is None and config.getini("kick_tasks") in (None, "", []):
        return  # the default selection: a path given by the user narrows it on purpose
    missing = [t for t in kick.tasks if t not in config.stash.get(COLLECTED_KEY, set())]
    if not missing:
        return
    message = (f"--kick-tasks selects {', '.join(missing)} but no test of it was collected; run without a path "
               f"(the bundled suite and registered tasks are collected then), or add a test marked "
               f"@pytest.mark.kick_task({missing[0]!r}) using the kick_case fixture")
    if not items:
        raise pytest.UsageError(f"pytest-kick: {message}")
    config.stash[UNCOLLECTED_KEY] = [f"pytest-kick: {message}"]
