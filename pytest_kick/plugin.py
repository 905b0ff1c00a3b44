"""pytest hooks of pytest-kick, registered through the ``pytest11`` entry point ``kick``.

Hooks only: the options, turning config into a KickConfig, parametrizing suite tests into one item
per (task, model, compressor, ratio), xdist grouping, and the end-of-session summary. Without
--kick-model (or the kick_model ini key) every hook returns at once: no torch import, no network,
no extra collection, no output.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pytest_kick import cache_dir, collection, extensions, fixtures, hookspecs, registration, search_run, tasks
from pytest_kick import config as kick_config
from pytest_kick.cases import cases_for
from pytest_kick.errors import KickError
from pytest_kick.lmeval import session as lmeval_session
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
        lmeval_session.prepare(values, origins, config.pluginmanager)  # --kick-from-lmeval: its tasks, engine, name
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
        config.args[:] = [str(collection.suites_dir())]
    else:
        collection.collect_registered_suite(config, kick)
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
            pick_device(
                kick.device,
                None,
                os.environ,
                torch.cuda.device_count,
                lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
            )
        except KickError as err:
            reason = str(err).split(": ", 1)[-1]  # pick_device names the flag; the value may come from the ini file
            raise KickError(f"{origins.setting('device', kick.device)}: {reason}") from None


class XdistRunId:
    """Hands the controller's run id to every xdist worker (so --kick-regen rewrites a file once per run)."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def pytest_configure_node(self, node) -> None:
        node.workerinput["kick_run_id"] = self.run_id


def pytest_ignore_collect(collection_path, config):
    """Skip the bundled suite's files of tasks nobody asked for (``suites/test_<task family>.py``)."""
    kick = config.stash.get(CONFIG_KEY, None)
    if kick is None or collection_path.parent != collection.suites_dir():
        return None
    if not collection_path.stem.startswith("test_"):
        return None
    if collection_path.name == collection.SEARCH_SUITE:
        return None if kick.search else True
    if config.stash.get(collection.APPENDED_KEY, False) and collection_path.name != collection.REGISTERED_SUITE:
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
        metafunc.parametrize(
            "kick_search_case",
            [
                pytest.param(case, id=case.id, marks=pytest.mark.xdist_group(case.group))
                for task in kick.tasks
                for case in search_run.search_cases(task, kick)
            ]
            or [pytest.param(None, id="not-selected")],
        )
        return
    if kick is None or "kick_case" not in metafunc.fixturenames:
        return
    chosen = collection.registered_choice(metafunc, kick)
    if chosen is None:
        chosen = [v for v in tasks.expand(collection.task_of(metafunc)) if v in kick.tasks]
    if not chosen:
        metafunc.parametrize("kick_case", [pytest.param(None, id="not-selected")])
        return
    metafunc.parametrize(
        "kick_case",
        [
            pytest.param(case, id=case.id, marks=pytest.mark.xdist_group(case.group))
            for task in chosen
            for case in cases_for(task, kick)
        ],
    )


UNSELECTED_KEY = pytest.StashKey[list]()


def _not_selected(item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(
        k in callspec.params and callspec.params[k] is None for k in ("kick_case", "kick_search_case")
    )


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Collect only the cases asked for: a test of a task outside --kick-tasks yields no item at all (not a
    deselected one). A user's own such test is named after collection (pytest_report_collectionfinish)."""
    result = yield
    config = collector.config
    if config.stash.get(CONFIG_KEY, None) is None or not isinstance(result, list):
        return result
    kept = [item for item in result if not _not_selected(item)]
    if len(kept) < len(result) and collector.path.parent != collection.suites_dir():
        marker = next(item for item in result if _not_selected(item)).get_closest_marker("kick_task")
        task = marker.args[0] if marker and marker.args else name.removeprefix("test_")
        config.stash.setdefault(UNSELECTED_KEY, []).append(f"{collector.nodeid}::{name} ({task})")
    return kept


def pytest_report_header(config):
    """--kick-plan: what each task's item budget can show, before anything is loaded or compressed."""
    kick = config.stash.get(CONFIG_KEY, None)
    if kick is None or not kick.plan or hasattr(config, "workerinput"):
        return None
    from pytest_kick import power_plan  # lazy: only --kick-plan needs it

    try:
        return power_plan.lines(config.stash[fixtures.RUNTIME_KEY])
    except KickError as err:
        raise pytest.UsageError(f"--kick-plan: {err}") from None


def pytest_report_collectionfinish(config, start_path, items):
    unselected = config.stash.get(UNSELECTED_KEY, [])
    lines = config.stash.get(collection.UNCOLLECTED_KEY, [])
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
        collection.check_every_task_collected(config, kick, items)
    keep = items

    def order(indexed):
        index, item = indexed
        case = collection.case_of(item)
        if case is None:  # searches last: each builds many variants
            searching = getattr(item, "callspec", None) and "kick_search_case" in item.callspec.params
            return (2 if searching else 0, (), index)
        variant = (
            kick.models.index(case.model),
            case.compressor is not None,
            kick.variants.index((case.compressor, case.ratio)) if case.compressor else -1,
            kick.recover.index(case.recovery) + 1 if case.recovery else 0,
        )  # recovered after compressed
        return (1, variant, index)

    items[:] = [item for _, item in sorted(enumerate(keep), key=order)]
    for item in items:  # so that a case failing before its verdict still appears in every report
        case = collection.case_of(item)
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
    declared = collection.declared(item)
    if (
        report.skipped
        and call.excinfo is not None
        and isinstance(longrepr, tuple)
        and len(longrepr) == 3
        and Path(longrepr[0]).resolve().is_relative_to(PACKAGE_DIR)
    ):
        path, line = declared or collection.call_site(item, call.excinfo)
        report.longrepr = (path, line, longrepr[2])
    return report


def pytest_unconfigure(config) -> None:
    """The next session (pytester runs in one process) starts from the bundled tasks and entries again."""
    tasks.use([])
    extensions.reset()


def pytest_itemcollected(item) -> None:
    case = collection.case_of(item)
    if case is not None:
        item.config.stash.setdefault(collection.COLLECTED_KEY, set()).add(case.task)
