"""The fixtures a suite test uses: kick_case, kick_baseline, kick_evaluate, kick_gate.

A suite test reads like a unit test::

    @pytest.mark.kick_task("factoid_qa")
    def test_factoid_qa(kick_case, kick_baseline, kick_evaluate, kick_gate):
        dense = kick_baseline(kick_case)
        compressed = kick_evaluate(kick_case)
        kick_gate(kick_case, dense, compressed)

Without --kick-model the fixtures skip (the plugin is off). A KickError (missing data, corrupt cache ...)
fails the item with its one-line message, not a traceback. A problem every item would meet (a model that
cannot be loaded: KickSessionError) stops the session once with its message, exit code 2.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest

from pytest_kick import gate, sequential_run, tasks
from pytest_kick.cases import KickCase
from pytest_kick.config_tolerance import parse_tolerance_value
from pytest_kick.errors import KickError, KickWarning
from pytest_kick.item_errors import load_model, user_errors
from pytest_kick.judge import discrimination
from pytest_kick.record import PREFIX, Verdict, put
from pytest_kick.runtime import Runtime
from pytest_kick.tasks.base import chance_levels, choices_summary, mean_chance

RUNTIME_KEY = pytest.StashKey[Runtime]()
OFF = "pytest-kick is off: pass --kick-model (or set the kick_model ini key)"


@pytest.fixture(scope="session")
def kick_runtime(request) -> Runtime:
    runtime = request.config.stash.get(RUNTIME_KEY, None)
    if runtime is None:
        pytest.skip(OFF)
    return runtime


@pytest.fixture
def kick_case(request) -> KickCase:
    """The (task, model, compressor, ratio) of this item; the plugin parametrizes it."""
    pytest.skip(OFF)


def _judge_usage(runtime: Runtime, node) -> None:
    """Add what the judge spent during this item to its ``kick_judge`` property (summed in the summary)."""
    usage = runtime.judge_usage()
    if usage is None:
        return
    for k, (key, value) in enumerate(node.user_properties):
        if key == PREFIX + "judge":
            node.user_properties[k] = (
                key,
                {n: v + usage[n] if isinstance(v, int) else usage[n] or v for n, v in value.items()},
            )
            return
    node.user_properties.append((PREFIX + "judge", usage))


def _counting_judge_usage(func, runtime: Runtime, node):
    """``func``, recording what the judge spent during it (details and flip reports ask it too) however it ends."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            _judge_usage(runtime, node)

    return wrapper


def _judge_screen(runtime: Runtime, case: KickCase, node, dense, compressed=None, warn: bool = True):
    """Leave the items the judge failed on out of the pairing (counted, recorded); too many: no verdict."""
    dense, compressed, screen = runtime.judged(case, dense, compressed)
    if screen is not None:
        put(node, judge_errors=screen.record())
        if screen.exceeded:
            put(node, verdict=Verdict.JUDGE_ERROR)
            screen.check(f"{case.task} {case.model_name} {case.label}", runtime.judge_reason())
        elif screen.left_out and warn:
            warnings.warn(KickWarning(f"{case.task} {case.model_name} {case.label}: {screen.note()}"), stacklevel=4)
    return dense, compressed, screen


@pytest.fixture
def kick_baseline(kick_runtime, request):
    """``kick_baseline(case)`` -> the dense per-item results for the case's (model, task), from the
    baseline cache when its key matches, computed (once across xdist workers) otherwise."""

    @user_errors(request)
    def get(case: KickCase):
        load_model(kick_runtime, case)
        discrimination.require(kick_runtime, case, request.node)  # a judge no better than chance: inconclusive
        result, status, path = kick_runtime.dense(case)
        put(request.node, baseline=status, baseline_path=str(path))
        return result

    return _counting_judge_usage(get, kick_runtime, request.node)


@pytest.fixture
def kick_evaluate(kick_runtime, request):
    """``kick_evaluate(case)`` -> per-item results of the case's compressed model (dense: the baseline).

    Dense first: a compressed case whose dense baseline is inconclusive (not significantly above the task's
    chance level) is skipped before its model is compressed or evaluated: its verdict could only be
    "inconclusive"."""

    @user_errors(request)
    def evaluate(case: KickCase):
        load_model(kick_runtime, case)
        dense = kick_runtime.dense(case)[0]
        if case.is_dense:
            return dense
        task = kick_runtime.task(case.task)
        dense = _judge_screen(kick_runtime, case, request.node, dense, warn=False)[0]  # the gate warns
        floor = _chance(kick_runtime, case, task, dense)
        if not _informative(task, dense, floor, kick_runtime.config.seed):
            put(
                request.node,
                dense=tasks.figure(task, dense.scores),
                n=len(dense.scores),
                metric=task.metric,
                higher_is_better=task.higher_is_better,
                verdict=Verdict.INCONCLUSIVE,
                saved=True,
                chance=mean_chance(floor),
            )
            pytest.skip(f"{_inconclusive(case, task, dense, floor)}; {case.label} was neither compressed nor evaluated")
        try:
            return kick_runtime.evaluate_gated(case, dense, _tolerance(kick_runtime, request.node, case.task), floor)
        finally:
            _judge_usage(kick_runtime, request.node)

    return evaluate


def _informative(task, dense, floor, seed: int) -> bool:
    """Whether dense has knowledge to lose on this task, against each item's chance level (see gate.informative)."""
    return gate.informative(dense.scores, floor, task.higher_is_better, seed=seed)


def _inconclusive(case: KickCase, task, dense, floor) -> str:
    return (
        f"{case.task}: inconclusive: dense {case.model_name} scores {tasks.figure(task, dense.scores):.3f} "
        f"(n={len(dense.scores)}), not significantly above the task's chance level ({gate.chance_text(floor)})"
    )


def _tolerance(runtime: Runtime, node, task: str) -> gate.Tolerance:
    """Per-task (or per-family) option or ini value, else a @pytest.mark.kick_tolerance("10%") marker, else the
    default."""
    spec = runtime.config.tolerance
    if task in spec.per_task or task.split(":", 1)[0] in spec.per_task:  # icrqa=10% covers icrqa:open too
        return spec.for_task(task)
    marker = node.get_closest_marker("kick_tolerance")
    if marker is not None:
        spec = marker.args[0] if marker.args else marker.kwargs.get("spec")
        if spec is None:
            raise KickError("@pytest.mark.kick_tolerance needs a tolerance, e.g. @pytest.mark.kick_tolerance('10%')")
        return parse_tolerance_value("@pytest.mark.kick_tolerance", str(spec))
    return spec.default


@pytest.fixture
def kick_gate(kick_runtime, request):
    """``kick_gate(case, dense, compressed)``: pass when matching, fail with the evidence when not,
    skip as inconclusive when dense is at the task's floor. The dense item checks the dense run is sane."""

    @user_errors(request)
    def check(case: KickCase, dense, compressed) -> gate.GateResult | None:
        task = kick_runtime.task(case.task)
        node = request.node
        budget_dense = kick_runtime.judged(case, dense)[0]  # the whole budget (a sequential case may stop early)
        dense, budget = sequential_run.paired(kick_runtime, case, dense, compressed)
        dense, compressed, screen = _judge_screen(
            kick_runtime, case, node, dense, None if case.is_dense else compressed
        )
        compressed = dense if case.is_dense else compressed
        dataset, _, items = kick_runtime.data(case.task)
        floor = _chance(kick_runtime, case, task, dense)
        # task, model, compressor and ratio were attached to every kick item at collection (plugin.py)
        put(
            node,
            metric=task.metric,
            n=len(budget_dense.scores),
            dense=tasks.figure(task, budget_dense.scores),
            higher_is_better=task.higher_is_better,
            details_dense=_details(task, case, kick_runtime, budget_dense),
            protocol=kick_runtime.settings.protocol,
            data_source=dataset.source,
            chance=mean_chance(floor),
            choices=choices_summary(task, items),
        )
        if case.is_dense:
            return _check_dense(
                case, task, dense, node, floor, kick_runtime.config.seed, lambda: kick_runtime.uses_shots(case.task)
            )
        if list(dense.item_ids) != list(compressed.item_ids):
            raise KickError(
                f"{case.task}: dense and compressed results are not for the same items in the same order "
                f"({len(dense.item_ids)} vs {len(compressed.item_ids)} ids); a stale or edited baseline? "
                f"rerun with --kick-regen (baseline files) or delete the cache entry"
            )
        tolerance = _tolerance(kick_runtime, node, case.task)
        verdict = kick_runtime.verdict(case, dense, compressed, tolerance, floor, budget, screen)
        if screen is not None and screen.decision:  # the worst case's two readings (judge/worst_case.py)
            put(node, judge_errors=screen.record())
        report = kick_runtime.compression.get(case.variant)
        put(
            node,
            compressed=verdict.compressed,
            drop=verdict.drop,
            threshold=verdict.threshold,
            drop_low=verdict.drop_low,
            drop_high=verdict.drop_high,
            drop_lower_bound=verdict.drop_lower_bound,
            p_value=verdict.p_value,
            stat=verdict.stat,
            verdict=verdict.status,
            items_used=len(compressed.scores) if verdict.items_used is None else verdict.items_used,
            budget=len(budget_dense.scores) if verdict.budget is None else verdict.budget,
            bound_low=verdict.bound_low,
            bound_high=verdict.bound_high,
            alpha=verdict.alpha if verdict.stat == "sequential" else None,
            family=kick_runtime.config.family if verdict.stat == "sequential" else None,
            smallest_drop=verdict.smallest_drop,
            drafting=kick_runtime.drafting(case),
            lost=verdict.lost,
            kept=verdict.kept,
            gained=verdict.gained,
            tolerance=str(tolerance),
            details=_details(task, case, kick_runtime, compressed),
            sparsity=None if report is None else report.achieved,
            compression=None if report is None else report.as_record(),
        )
        if case.recovery:  # what recovery regained, at what size and cost (recover/outcome.py)
            put(node, recovery=kick_runtime.recovery_record(case, dense, compressed))
        if verdict.warning and verdict.status not in (Verdict.INCONCLUSIVE, Verdict.UNDECIDED):
            # at the suite test's call (check, its usage-counting wrapper, the test)
            warnings.warn(KickWarning(verdict.warning), stacklevel=4)
        flips = kick_runtime.write_flips(case, dense, compressed)
        if verdict.status == Verdict.NOT_MATCHING:
            note = f"\n  {screen.note()}" if screen is not None and screen.left_out else ""
            pytest.fail(f"{verdict.message}{note} ({'see ' if isinstance(flips, Path) else ''}{flips})", pytrace=False)
        if verdict.status == Verdict.INCONCLUSIVE:
            pytest.skip(verdict.message.splitlines()[0])
        if verdict.status == Verdict.UNDECIDED:
            if kick_runtime.config.undecided == "fail":
                pytest.fail(f"{verdict.message}\n  (--kick-undecided fail)", pytrace=False)
            warnings.warn(KickWarning(verdict.warning or verdict.message.splitlines()[0]), stacklevel=4)
        return verdict

    return _counting_judge_usage(check, kick_runtime, request.node)


def _details(task, case: KickCase, runtime, result) -> dict | None:
    """The task's extra figures (per-category accuracy, F1, ROUGE-2 ...) for the report; never gated."""
    details = getattr(task, "details", None)
    if details is None:
        return None
    by_id = {item.id: item for item in runtime.data(case.task)[2]}
    if not all(i in by_id for i in result.item_ids):
        return None
    return details([by_id[i] for i in result.item_ids], result.scores, result.outputs)


def _chance(runtime, case: KickCase, task, dense):
    """The chance level of each dense item, in the dense result's order (or the task's one floor)."""
    by_id = {item.id: item for item in runtime.data(case.task)[2]}
    if not all(i in by_id for i in dense.item_ids):
        return task.floor
    return chance_levels(task, [by_id[i] for i in dense.item_ids])


def _check_dense(case: KickCase, task, dense, node, floor, seed: int, uses_shots=lambda: True) -> None:
    if dense.outputs and not any(o.strip() for o in dense.outputs):
        put(node, verdict=Verdict.BROKEN)
        pytest.fail(
            f"{case.task}: dense {case.model_name} produced empty output for all {len(dense.outputs)} "
            f"items; check the model and its tokenizer",
            pytrace=False,
        )
    if not _informative(task, dense, floor, seed):
        put(node, verdict=Verdict.INCONCLUSIVE)
        hint = " (for small models try --kick-shots 2)" if uses_shots() else ""  # never for a task without them
        pytest.skip(f"{_inconclusive(case, task, dense, floor)}; no compressed case can show a loss{hint}")
    put(node, verdict=Verdict.SANE)
