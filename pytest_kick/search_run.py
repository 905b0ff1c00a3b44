"""--kick-search in a session: one test per (task, model, compressor) that searches the largest matching level.

The search itself is pure (search.py); this module runs it through the Runtime. Each level it asks about is
one compressed variant, built, evaluated on the task and gated against the dense baseline exactly as a grid
case would be (same tolerance, statistics and chance check); a search evaluates each level at most once.

Axes: a pruner searches sparsity from 0 towards ``SPARSITY_LIMIT`` at ``--kick-search-resolution``, coarse
levels every 0.2; a weight-only quantizer searches the bit widths it accepts, fewest last
(``QUANT_LADDER``: w8, w4g128, w3g128, w2g128), all of them (there are only four).

The rule of the test: it passes with both readings recorded; it fails when not even the least compressed
level matches dense (nothing can be compressed at this tolerance); it is skipped as inconclusive when the
dense model is not significantly above the task's chance level (no level could show a loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_kick import fixtures, gate, item_errors, sequential_run, tasks
from pytest_kick.cases import KickCase
from pytest_kick.compress import info as compressor_info
from pytest_kick.formats import confidence, reading_text
from pytest_kick.models import registry
from pytest_kick.record import Verdict, put
from pytest_kick.runtime import Runtime
from pytest_kick.search import QUANT_LADDER, SPARSITY_LIMIT, Axis, SearchResult, search, sparsity_axis

COARSE_SPACING = 0.2  # sparsity between coarse-grid levels, whatever the resolution


@dataclass(frozen=True)
class SearchCase:
    """One search item: the largest matching level of ``compressor`` on ``task`` for ``model``."""

    task: str
    model: str
    compressor: str

    @property
    def model_name(self) -> str:
        return registry.resolve(self.model).name

    @property
    def id(self) -> str:
        variant = self.task.split(":", 1)[1] + "-" if ":" in self.task else ""
        return f"{variant}{self.model_name}-{self.compressor}"

    @property
    def group(self) -> str:
        """xdist group: a model's searches with one compressor share a worker (the variants they build)."""
        return f"search-{self.model_name}-{self.compressor}"

    @property
    def quantizer(self) -> bool:
        """Its level is a bit width (the compressor's registry entry says so), not a sparsity."""
        return compressor_info(self.compressor).quantizer


def search_cases(task: str, config) -> list[SearchCase]:
    return [SearchCase(task, model, c) for model in config.models for c in config.searched]


def axis_of(case: SearchCase, resolution: float) -> Axis:
    """Sparsity for a pruner; for a quantizer, step k of the axis is QUANT_LADDER[k - 1]."""
    if case.quantizer:
        return Axis(0.0, float(len(QUANT_LADDER)), 1.0, coarse=1)
    return sparsity_axis(SPARSITY_LIMIT, resolution, coarse=max(1, round(COARSE_SPACING / resolution)))


def ratio_of(case: SearchCase, level: float) -> str:
    """The --kick-ratio spelling of an axis level: ``0.35`` or ``w4g128``."""
    return QUANT_LADDER[round(level) - 1] if case.quantizer else f"{level:g}"


def level_record(case: SearchCase, level: float | None) -> str | None:
    """What a report shows for a level: the sparsity, or the quantization spec."""
    return None if level is None else ratio_of(case, level)


def _info(ratio: str, verdict: gate.GateResult, achieved: float | None) -> dict:
    """The gate's evidence at one level, as plain data for the reports."""
    return {
        "ratio": ratio,
        "verdict": verdict.status,
        "items_used": verdict.items_used,
        "budget": verdict.budget,
        "compressed": verdict.compressed,
        "drop": verdict.drop,
        "drop_low": verdict.drop_low,
        "drop_high": verdict.drop_high,
        "drop_lower_bound": verdict.drop_lower_bound,
        "p_value": verdict.p_value,
        "lost": verdict.lost,
        "gained": verdict.gained,
        "threshold": verdict.threshold,
        "sparsity": achieved,
    }


def run_search(runtime: Runtime, case: SearchCase, dense, tolerance: gate.Tolerance, floor) -> SearchResult:
    """The search for one case: each level it asks about is evaluated once (search.py never asks twice) and gated
    exactly as a grid case, with a progress line per level."""

    def verdict(level: float):
        ratio = ratio_of(case, level)
        variant = KickCase(case.task, case.model, case.compressor, ratio)
        compressed = runtime.evaluate_gated(variant, dense, tolerance, floor)
        paired, budget = sequential_run.paired(runtime, variant, dense, compressed)
        v = runtime.verdict(variant, paired, compressed, tolerance, floor, budget)
        report = runtime.compression.get(variant.variant)
        info = _info(ratio, v, None if report is None else report.achieved)
        runtime.ui.message(
            f"search {case.task} {case.model_name} {case.compressor}: {ratio} -> "
            f"{info['compressed']:.3f} ({confidence(info)}) {info['verdict']}"
        )
        return v.status == Verdict.MATCHING, info

    return search(verdict, axis_of(case, runtime.config.search_resolution))


def result_record(case: SearchCase, result: SearchResult) -> dict:
    """The search as the reports keep it: both readings (as ratios), their evidence, every level evaluated."""

    def reading(r) -> dict:
        return {
            "level": level_record(case, r.level),
            "resolved": r.resolved,
            "next_failing": level_record(case, r.next_failing),
            "evidence": r.info,
        }

    return {
        "axis": "bits" if case.quantizer else "sparsity",
        "resolution": None if case.quantizer else result.axis.resolution,
        "largest_matching": reading(result.largest_matching),
        "largest_safe": reading(result.largest_safe),
        "points": [p.info for p in result.points],
        "smallest_not_matching": _smallest_not_matching(case, result),
        "evaluations": result.evaluations,
        "complete": result.complete,
    }


def _smallest_not_matching(case: SearchCase, result: SearchResult) -> str | None:
    """The least compressed level whose verdict was not matching (under the sequential rule: shown not matching,
    at its stated error rate); an undecided level is neither shown matching nor shown not matching."""
    failing = [p.level for p in result.points if p.info["verdict"] == Verdict.NOT_MATCHING]
    return level_record(case, min(failing)) if failing else None


def summary(case: SearchCase, record: dict) -> str:
    what = "fewest bits" if record["axis"] == "bits" else "largest sparsity"
    shown = record.get("smallest_not_matching")
    error = ""
    if record.get("alpha") is not None:
        error = f" (sequential: each level's decision at error <= {record['alpha']:g})"
    return (
        f"{case.task}: {case.compressor} on {case.model_name}, {what} matching dense: "
        f"largest matching {reading_text(record['largest_matching'])}; "
        f"largest with every lower level matching {reading_text(record['largest_safe'])}; "
        f"smallest not matching {shown or 'none'}; {record['evaluations']} levels evaluated{error}"
    )


def check(runtime: Runtime, node, case: SearchCase, tolerance, dense_of, chance_of, informative) -> dict:
    """The body of a search item: dense first, the search, the rule (see the module doc). Returns the record."""
    task = runtime.task(case.task)
    dense_case = KickCase(case.task, case.model)
    dense = dense_of(dense_case)
    floor = chance_of(dense_case, task, dense)
    props = {
        "task": case.task,
        "model": case.model_name,
        "compressor": case.compressor,
        "metric": task.metric,
        "n": len(dense.scores),
        "dense": tasks.figure(task, dense.scores),
        "higher_is_better": task.higher_is_better,
        "tolerance": str(tolerance),
    }
    if not informative(task, dense, floor):
        put(node, **props, verdict=Verdict.INCONCLUSIVE)
        pytest.skip(
            f"{case.task}: inconclusive: dense {case.model_name} is not significantly above the task's "
            f"chance level ({gate.chance_text(floor)}); no level can show a loss, nothing was searched"
        )
    result = run_search(runtime, case, dense, tolerance, floor)
    record = result_record(case, result)
    if sequential_run.applies(runtime, case.task):
        record["alpha"] = sequential_run.case_alpha(runtime.config, runtime.family_size)
    status = Verdict.NOT_MATCHING if record["largest_matching"]["level"] is None else Verdict.MATCHING
    put(node, **props, search=record, verdict=status)
    text = summary(case, record)
    runtime.ui.message(text)
    if status == Verdict.NOT_MATCHING:
        least = QUANT_LADDER[0] if case.quantizer else f"{result.axis.level(1):g}"
        pytest.fail(
            f"{text}\n  not even {case.compressor}@{least} matches dense (tolerance {tolerance})", pytrace=False
        )
    return record


# --- the fixtures of suites/test_search.py (registered by the plugin) ------------------------------------


@pytest.fixture
def kick_search_case(request) -> SearchCase:
    """The (task, model, compressor) this search item covers; the plugin parametrizes it."""
    pytest.skip(fixtures.OFF)


@pytest.fixture
def kick_search(kick_runtime, request):
    """``kick_search(case)``: the search, gated as the module doc says; returns the record the reports show."""

    @item_errors.user_errors(request)
    def run(case: SearchCase) -> dict:
        def dense_of(dense_case):
            item_errors.load_model(kick_runtime, dense_case)
            result, status, path = kick_runtime.dense(dense_case)
            put(request.node, baseline=status, baseline_path=str(path))
            return result

        return check(
            kick_runtime,
            request.node,
            case,
            fixtures._tolerance(kick_runtime, request.node, case.task),
            dense_of,
            lambda c, task, dense: fixtures._chance(kick_runtime, c, task, dense),
            lambda task, dense, floor: fixtures._informative(task, dense, floor, kick_runtime.config.seed),
        )

    return run
