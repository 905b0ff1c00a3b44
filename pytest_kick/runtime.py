"""The per-process state of a kick session: it hands each layer what it needs. Fixtures call into one Runtime.

Its parts, one job each: the loaded models and the variant each is in (models/pool.py), each model's engine
(engines/factory.py, by the --kick-engine entry of the registry), the dense baselines (dense.py), the judge
(judge/session.py), recovery (recover/session.py), flip reports (flip_report.py). The Runtime itself keeps
the session's tasks and their data, and evaluates a case: a task's requests answered by its model's engine.
"""

from __future__ import annotations

import importlib
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

from pytest_kick import flip_report, gate, judge, sequential_run, tasks
from pytest_kick.baseline import TaskResult
from pytest_kick.cases import KickCase
from pytest_kick.dense import DenseBaselines
from pytest_kick.engines.base import Runner
from pytest_kick.engines.draft_store import DraftStore
from pytest_kick.engines.factory import Engines
from pytest_kick.errors import KickError, KickWarning
from pytest_kick.finite import NonFinite, check_scores
from pytest_kick.judge import worst_case
from pytest_kick.judge.errors import kept_items
from pytest_kick.model_pool import ModelPool, share_cpu  # noqa: F401  (share_cpu: imported from here by tests)
from pytest_kick.recover.session import Recoveries
from pytest_kick.tasks import probe
from pytest_kick.tasks.base import Settings


class SilentUI:
    """What the runtime tells a person; the plugin supplies one that writes to the terminal."""

    def message(self, text: str) -> None:
        pass

    def progress(self, description: str):
        return nullcontext(lambda done, total: None)


class Runtime:
    def __init__(self, config, ui=None, worker_id: str | None = None, run_id: str = "local"):
        self.config = config
        self.ui = ui or SilentUI()
        self.worker_id = worker_id
        self.pool = ModelPool(config, self.ui, worker_id)
        self.engines = Engines(config)
        self.denses = DenseBaselines(self, config, run_id)
        self.drafts = DraftStore(config.cache_dir, config.accelerate)  # dense answers -> their variants' decoding
        self.settings = Settings(
            config.protocol, config.shots, config.seed, config.limit, config.data_dir, config.accelerate != "off"
        )
        self._data: dict = {}
        self._uses_shots: dict = {}  # task -> whether --kick-shots changes it
        self.judges = None  # a judge replacing the tasks' scorers (--kick-judge): judge/session.py, on first use
        self._compressed: dict = {}  # (model, compressor, ratio, task, recovery) -> (TaskResult, seconds per item)
        self._recoveries = None  # recover.session.Recoveries, with --kick-recover
        self.family_size = sequential_run.family_size(config)  # --kick-family session splits alpha over them

    # --- models, variants and engines (models/pool.py, engines/factory.py) ------------------------

    def model(self, spec: str):
        """The loaded model; a load that failed fails every later call the same way, without retrying."""
        return self.pool.model(spec)

    def use_variant(self, spec: str, compressor: str | None, ratio: str | None):
        """Put model ``spec`` into the asked state (dense, or compressed by compressor at ratio)."""
        return self.pool.use_variant(spec, compressor, ratio)

    @property
    def compression(self) -> dict:
        """(model, compressor, ratio) -> the CompressionReport of each variant built in this process."""
        return self.pool.compression

    @property
    def _backups(self) -> dict:  # model -> DenseWeights (tests reach into it)
        return self.pool.backups

    def engine(self, spec: str, compressed: bool = False):
        """The engine of a model, built once by the --kick-engine entry: locally it runs whichever variant the
        model is in; a served model has one per server, the dense and the compressed one."""
        return self.engines.get(spec, self.model(spec), compressed)

    # --- tasks and their judge ----------------------------------------------------------------

    def task(self, name: str):
        """The session's task: the registry's, or its judged version under --kick-judge (judge/session.py)."""
        task = tasks.get(name)
        if not judge.judges(self.config.judge, task):  # the task's own scorer
            return task
        if self.judges is None:
            from pytest_kick.judge.session import JudgeSession  # lazy: ~26 ms (judge, local engine) on every pytest run

            self.judges = JudgeSession(self.config, self.ui, self.worker_id)
        return self.judges.task(name, task)

    def judge_check(self, name: str):
        """The judge's discrimination check of a judged task (judge/discrimination.Check), None for other tasks."""
        if not self.judged_task(name):
            return None
        return self.judges.check(
            name, tasks.get(name), self.data(name)[2], getattr(self.config, "alpha", None) or 0.05, self.config.seed
        )

    def judge_usage(self) -> dict | None:
        """What the judge spent since the last call (None without a judge)."""
        return None if self.judges is None else self.judges.take()

    def judged_task(self, name: str) -> bool:
        """Whether the task's scores come from a judge, whose NaN marks an item it failed on."""
        return hasattr(getattr(self.task(name), "scorer", None), "judge")

    def judged(self, case: KickCase, dense: TaskResult, compressed: TaskResult | None = None):
        """(dense, compressed, screen): the items the judge failed on (NaN scores) left out of both results.

        ``screen`` (judge/errors.py) counts them; None when the task has no judge or the results are not
        of the same items (the gate says so). Raising for too many is the caller's (it records first)."""
        if not self.judged_task(case.task) or (compressed is not None and dense.item_ids != compressed.item_ids):
            return dense, compressed, None
        screen = kept_items(dense.scores, None if compressed is None else compressed.scores)

        def keep(result):
            if result is None or len(screen.kept) == len(result.scores):
                return result
            return TaskResult(
                result.task,
                result.metric,
                [result.item_ids[k] for k in screen.kept],
                [result.scores[k] for k in screen.kept],
                [result.outputs[k] for k in screen.kept],
            )

        return keep(dense), keep(compressed), screen

    def judge_reason(self) -> str:
        return "" if self.judges is None else self.judges.first_error()

    # --- data ---------------------------------------------------------------------------------

    def data(self, task_name: str):
        """(dataset, shots, evaluated items) of a task, loaded once."""
        if task_name not in self._data:
            task = self.task(task_name)
            dataset = task.load(self.settings)
            if self.settings.data_dir is not None and dataset.source.startswith("bundled:"):
                layout = getattr(importlib.import_module(type(task).__module__), "LOCAL_LAYOUT", "its files")
                warnings.warn(
                    KickWarning(
                        f"--kick-data-dir {self.settings.data_dir} holds no {task.family} data, "
                        f"so {task_name} uses the "
                        f"bundled sample; to use your own copy, add {layout}"
                    ),
                    stacklevel=2,
                )
            if self.settings.shots and not self.uses_shots(task_name, dataset):
                warnings.warn(
                    KickWarning(
                        f"--kick-shots {self.settings.shots} does not apply to {task_name}: "
                        f"its in-context examples, if "
                        f"any, are set by the task itself"
                    ),
                    stacklevel=2,
                )
            shots, items = task.split(dataset, self.settings)
            self._data[task_name] = (dataset, shots, items)
        return self._data[task_name]

    def uses_shots(self, task_name: str, dataset=None) -> bool:
        """Whether --kick-shots changes the task's shots, items or prompt (tasks/probe.py), found once."""
        if task_name not in self._uses_shots:
            dataset = dataset if dataset is not None else self.data(task_name)[0]
            self._uses_shots[task_name] = probe.uses_shots(tasks.get(task_name), dataset, self.settings)
        return self._uses_shots[task_name]

    # --- evaluation ---------------------------------------------------------------------------

    def verdict(
        self,
        case: KickCase,
        dense: TaskResult,
        compressed: TaskResult,
        tolerance,
        floor,
        budget: int | None = None,
        screen=None,
    ):
        """The gate's answer (gate.GateResult) for the case's paired results, with its task's direction, metric
        and figure and the session's --kick-stat and seed: the grid's cases and the search's levels alike.

        ``budget``: a sequential case's item budget, its pairs given in evaluation order (possibly fewer); the
        caller has checked that the budget's dense run is above chance (``floor`` is then only reported).
        With a judge ``screen`` holding compressed judge errors, the worst case decides (judge/worst_case.py)."""
        task = self.task(case.task)
        if screen is not None and screen.worst is not None:
            at = task.floor if isinstance(floor, (list, tuple)) else floor  # per-item levels follow the kept items
            decision = worst_case.decide(
                *screen.worst, task.floor, lambda d, c: self._gate(case, task, d, c, tolerance, at, budget)
            )
            screen.decision = decision.record()
            return decision.result
        return self._gate(case, task, dense.scores, compressed.scores, tolerance, floor, budget)

    def _gate(self, case: KickCase, task, dense: list, compressed: list, tolerance, floor, budget=None):
        rounds = sequential_run.applies(self, case.task)
        return gate.judge(
            task=case.task,
            label=case.label,
            dense=dense,
            compressed=compressed,
            tolerance=tolerance,
            higher_is_better=task.higher_is_better,
            floor=floor,
            metric=task.metric,
            stat=self.config.stat if rounds or self.config.stat != "sequential" else "ci",
            seed=self.config.seed,
            figure=getattr(task, "figure", None),
            score_range=tasks.score_range(task),
            budget=budget if rounds else None,
            alpha=sequential_run.case_alpha(self.config, self.family_size),
            dense_informative=True if rounds and budget is not None else None,
        )

    def evaluate_gated(self, case: KickCase, dense: TaskResult, tolerance, floor) -> TaskResult:
        """The case's results for its verdict: under the sequential rule only the items it needed, in evaluation
        order (sequential_run.py); otherwise every item."""
        if sequential_run.applies(self, case.task) and not case.recovery:
            return sequential_run.evaluate_in_rounds(self, case, dense, tolerance, floor)
        return self.evaluate(case)

    def evaluate(self, case: KickCase, subset=None) -> TaskResult:
        """Per-item results of the case's model variant on its task: the task's requests, answered by the engine
        (with the case's recovery applied around them, if any). ``subset``: only these items (a sequential
        round); only a whole evaluation is kept for recovery to compare against."""
        loaded = None
        if self.engines.entry.local_weights:  # a served variant is whatever its server serves
            loaded = self.use_variant(case.model, case.compressor, case.ratio)
        task = self.task(case.task)
        _, shots, items = self.data(case.task)
        items = items if subset is None else list(subset)
        engine = self.engine(case.model, not case.is_dense)
        if case.recovery:
            self.compressed_result(case)  # first: the reference the recovered case is measured against
        drafting = self.drafts.around(case, engine, lambda: self.denses.key(case))
        with (
            self.recoveries().applied(case, loaded, engine) if case.recovery else nullcontext(engine) as engine,
            drafting,
        ):
            started = time.perf_counter()
            with self.ui.progress(f"{case.task} {case.model_name} {case.label}") as advance:
                try:
                    scores, outputs = task.evaluate(items, shots, self.settings, Runner(engine, advance))
                except NonFinite as err:
                    raise NonFinite(
                        f"{case.task} on {case.model_name} {case.label}{_item_of(err.request, items)}: {err}"
                    ) from None
            seconds = (time.perf_counter() - started) / max(1, len(items))
        if len(scores) != len(items) or len(outputs) != len(items):
            raise KickError(f"{case.task}: {len(scores)} scores and {len(outputs)} outputs for {len(items)} items")
        result = TaskResult(task.name, task.metric, [i.id for i in items], [float(x) for x in scores], list(outputs))
        check_scores(
            result.scores,
            result.item_ids,
            f"{case.task} on {case.model_name} {case.label}",
            allow_nan=self.judged_task(case.task),
        )  # never a verdict, never a stored baseline
        if not case.is_dense and subset is None:
            self._compressed.setdefault((*case.variant, case.task, case.recovery), (result, seconds))
        return result

    # --- recovery (--kick-recover) --------------------------------------------------------------

    def recoveries(self):
        if self._recoveries is None:
            self._recoveries = Recoveries(self.config, self.ui)
        return self._recoveries

    def compressed_result(self, case: KickCase) -> tuple[TaskResult, float]:
        """(result, seconds per item) of the case's compressed variant without recovery, evaluated once."""
        memo = (*case.variant, case.task, None)
        if memo not in self._compressed:
            self.evaluate(KickCase(case.task, case.model, case.compressor, case.ratio))
        return self._compressed[memo]

    def recovery_record(self, case: KickCase, dense: TaskResult, recovered: TaskResult) -> dict:
        """What a recovered case reports beside its verdict: gap closed, items regained, size, cost."""
        compressed, base_seconds = self.compressed_result(case)
        own = self._compressed.get((*case.variant, case.task, case.recovery))
        seconds = (base_seconds, own[1]) if own else None
        return self.recoveries().record(
            case, self.model(case.model), self.task(case.task), dense, compressed, recovered, seconds
        )

    def drafting(self, case: KickCase) -> dict | None:
        """What dense-drafted decoding did in the case's evaluation (engines/draft.py Tally.record), or None."""
        return self.drafts.records.get(case)

    def baseline_key(self, case: KickCase) -> dict:
        return self.denses.key(case)

    def dense(self, case: KickCase):
        """(dense TaskResult, status, path) for the case's (model, task): see dense.DenseBaselines.get."""
        return self.denses.get(case)

    def write_flips(self, case: KickCase, dense: TaskResult, compressed: TaskResult) -> Path | str:
        """A JSONL of the items whose score changed, so a person can read what knowledge was lost (flip_report.py)."""
        _, _, items = self.data(case.task)
        return flip_report.write(self.config.cache_dir, self.task(case.task), items, case, dense, compressed)


def _item_of(request, items) -> str:
    """' (item ID)' for the first item whose question the request's text holds, else ''."""
    text = "" if request is None else (getattr(request, "context", "") or "") + (getattr(request, "text", "") or "")
    found = next((i.id for i in items if getattr(i, "question", None) and str(i.question) in text), None)
    return "" if found is None else f" (item {found})"
