"""The per-process state of a kick session: loaded models, which compressed variant each one is in,
task data, and dense baselines. Fixtures call into one Runtime; it hands each layer what it needs.

A model is loaded once per process. Compressed variants are derived from it in place and undone by
copying back the dense weights, so any number of (compressor, ratio) cases cost one model in memory
plus one copy of its decoder linears; items are ordered so each variant is built once per process.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

from pytest_kick import tasks
from pytest_kick.baseline import TaskResult
from pytest_kick.compress import spec as ratio_spec
from pytest_kick.cases import KickCase
from pytest_kick.config import KickConfig
from pytest_kick.errors import KickError, KickWarning
from pytest_kick.files import atomic_write
from pytest_kick.dense import DenseBaselines
from pytest_kick.finite import NonFinite, check_forward, check_scores, check_weights
from pytest_kick.gate import change
from pytest_kick.models import registry
from pytest_kick.tasks import flips
from pytest_kick.tasks.base import Settings


class SilentUI:
    """What the runtime tells a person; the plugin supplies one that writes to the terminal."""

    def message(self, text: str) -> None:
        pass

    def progress(self, description: str):
        return nullcontext(lambda done, total: None)


def share_cpu(torch, environ) -> None:
    """Under xdist on CPU, give each worker its share of the cores: N workers with torch's default of one
    thread per core oversubscribe the machine, and spinning intra-op threads then run many times slower."""
    workers = int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


class Runtime:
    def __init__(self, config: KickConfig, ui=None, worker_id: str | None = None, run_id: str = "local"):
        self.config = config
        self.ui = ui or SilentUI()
        self.worker_id = worker_id
        self.denses = DenseBaselines(self, config, run_id)
        self.settings = Settings(config.protocol, config.shots, config.seed, config.limit, config.data_dir)
        self._models: dict = {}
        self._backups: dict = {}  # model -> DenseWeights
        self._undo: dict = {}  # model -> undo of replaced modules (int8), or None
        self._calibration: dict = {}  # model -> calibration token ids
        self._variant: dict = {}  # model -> (compressor, ratio) currently applied, or None for dense
        self.compression: dict = {}  # (model, compressor, ratio) -> CompressionReport
        self._data: dict = {}
        self._uses_shots: dict = {}  # task -> whether --kick-shots changes it
        self._engines: dict = {}  # model -> engine
        self.judges = None  # --kick-judge other than rouge: judge/session.py, built on first use
        self._compressed: dict = {}  # (model, compressor, ratio, task, recovery) -> (TaskResult, seconds per item)
        self._recoveries = None  # recover.session.Recoveries, with --kick-recover

    # --- models and variants ------------------------------------------------------------------

    def model(self, spec: str):
        """The loaded model; a load that failed fails every later call the same way, without retrying."""
        if isinstance(self._models.get(spec), KickError):
            raise self._models[spec]
        if spec not in self._models and self.config.engine != "local":  # a server's model: its tokenizer only
            from pytest_kick.engines.factory import served_model

            try:
                self._models[spec], self._variant[spec] = served_model(self.config, spec), None
            except KickError as err:
                self._models[spec] = err
                raise
        if spec not in self._models:
            import torch

            from pytest_kick.models.devices import pick_device, pick_dtype
            from pytest_kick.models.loading import load

            try:
                device = pick_device(
                    self.config.device, self.worker_id, os.environ, torch.cuda.device_count,
                    lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
                )
                dtype = pick_dtype(self.config.dtype, device)
                if device == "cpu":
                    share_cpu(torch, os.environ)
                loaded = load(registry.resolve(spec), self.config.cache_dir, device, dtype, notify=self.ui.message)
                check_weights(loaded.model, f"model {spec} ({loaded.weights_dir or loaded.identity.get('source')})",
                              _rebuild_hint(loaded.weights_dir, self.config.cache_dir))
                check_forward(loaded.model, loaded.tokenizer, loaded.device, f"model {spec} on {device} ({dtype})")
            except KickError as err:
                self._models[spec] = err
                raise
            except Exception as err:  # e.g. torch refusing the device or dtype: one line, and no retry per item
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                self._models[spec] = KickError(f"cannot load {spec} on --kick-device {self.config.device}: {first}")
                raise self._models[spec] from None
            self._models[spec] = loaded
            self._variant[spec] = None
        return self._models[spec]

    def use_variant(self, spec: str, compressor: str | None, ratio: str | None):
        """Put model ``spec`` into the asked state (dense, or compressed by compressor at ratio)."""
        loaded = self.model(spec)
        wanted = None if compressor is None else (compressor, ratio)
        if self._variant[spec] == wanted:
            return loaded
        if self._variant[spec] is not None:
            self._restore(spec)
        if wanted is not None:
            from pytest_kick.compress.base import DenseWeights

            if spec not in self._backups:
                self._backups[spec] = DenseWeights(loaded.model, loaded.weights_dir)
            name = registry.resolve(spec).name
            self.ui.message(f"compressing {name} with {compressor} at {ratio}")
            try:
                report = self._compress(spec, loaded, compressor, ratio, f"{compressor} {ratio} {name}")
                check_weights(loaded.model, f"{name} after {compressor} at {ratio}")  # a solver's NaN (a singular
                # Hessian, a checkpoint's damaged tensor) ends here, not as a verdict
            except BaseException:
                self._restore(spec)  # a half-compressed model must never pass for dense
                raise
            self.compression[(spec, compressor, ratio)] = report
            self._undo[spec] = report.undo
            self._variant[spec] = wanted
            self.ui.message(report.summary())
            if self.config.export is not None:  # --kick-export: the variant as a checkpoint a server loads
                from pytest_kick.compress.export import export

                self.ui.message(export(loaded, registry.resolve(spec).name, report, self.config.export))
        return loaded

    def _restore(self, spec: str) -> None:
        if self._undo.get(spec) is not None:
            self._undo.pop(spec)()
        if spec in self._backups:
            self._backups[spec].restore()
        self._variant[spec] = None

    def _compress(self, model: str, loaded, compressor: str, ratio: str, label: str):
        from pytest_kick.compress import info, pipeline
        from pytest_kick.compress.calibration import calibration_ids

        parsed = ratio_spec.parse(ratio)
        if compressor == "checkpoint":
            from pytest_kick.compress.checkpoint import load_into

            return load_into(loaded.model, self.config.compressed, self._backups[model])
        calibration = None
        if info(compressor).calibrated:
            if model not in self._calibration:  # drawn once per model, shared by every calibrated variant
                self._calibration[model], _, _ = calibration_ids(
                    loaded.tokenizer, self.config.calib_samples, self.config.calib_seqlen, self.config.seed,
                    self.config.data_dir, self.ui.message)
            calibration = self._calibration[model]
        with self.ui.progress(f"compress {label}") as advance:
            return pipeline.compress(loaded.model, compressor, parsed, self._backups[model],
                                     calibration, progress=advance)

    # --- tasks and their judge ----------------------------------------------------------------

    def task(self, name: str):
        """The session's task: the registry's, or its judged version under --kick-judge (judge/session.py)."""
        task = tasks.get(name)
        if self.config.judge == "rouge" or getattr(task, "family", None) not in ("summarization", "instruction"):
            return task
        if self.judges is None:
            from pytest_kick.judge.session import JudgeSession

            self.judges = JudgeSession(self.config, self.ui, self.worker_id)
        return self.judges.task(name, task)

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
        from pytest_kick.judge.errors import kept_items

        screen = kept_items(dense.scores, None if compressed is None else compressed.scores)

        def keep(result):
            if result is None or len(screen.kept) == len(result.scores):
                return result
            return TaskResult(result.task, result.metric, [result.item_ids[k] for k in screen.kept],
                              [result.scores[k] for k in screen.kept], [result.outputs[k] for k in screen.kept])

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
                warnings.warn(KickWarning(
                    f"--kick-data-dir {self.settings.data_dir} holds no {task.family} data, so {task_name} uses the "
                    f"bundled sample; to use your own copy, add {layout}"), stacklevel=2)
            if self.settings.shots and not self.uses_shots(task_name, dataset):
                warnings.warn(KickWarning(
                    f"--kick-shots {self.settings.shots} does not apply to {task_name}: its in-context examples, if "
                    f"any, are set by the task itself"), stacklevel=2)
            shots, items = task.split(dataset, self.settings)
            self._data[task_name] = (dataset, shots, items)
        return self._data[task_name]

    def uses_shots(self, task_name: str, dataset=None) -> bool:
        """Whether --kick-shots changes the task's shots, items or prompt (tasks/probe.py), found once."""
        if task_name not in self._uses_shots:
            from pytest_kick.tasks.probe import uses_shots

            dataset = dataset if dataset is not None else self.data(task_name)[0]
            self._uses_shots[task_name] = uses_shots(tasks.get(task_name), dataset, self.settings)
        return self._uses_shots[task_name]

    # --- evaluation ---------------------------------------------------------------------------

    def engine(self, spec: str, compressed: bool = False):
        """The engine of a model, built once: locally it runs whichever variant the model is in; a served
        model (--kick-engine openai-completions) has one per server, the dense and the compressed one."""
        loaded = self.model(spec)
        if self.config.engine != "local":
            return loaded.engine(compressed)
        if spec not in self._engines:
            from pytest_kick.engines.local import LocalEngine

            self._engines[spec] = LocalEngine(loaded.model, loaded.tokenizer, loaded.device, self.config.batch_size,
                                              loaded.dtype)
        return self._engines[spec]

    def evaluate(self, case: KickCase) -> TaskResult:
        """Per-item results of the case's model variant on its task: the task's requests, answered by the engine
        (with the case's recovery applied around them, if any)."""
        from pytest_kick.engines.base import Runner

        loaded = None
        if self.config.engine == "local":  # a served variant is whatever its server serves
            loaded = self.use_variant(case.model, case.compressor, case.ratio)
        task = self.task(case.task)
        _, shots, items = self.data(case.task)
        engine = self.engine(case.model, not case.is_dense)
        if case.recovery:
            self.compressed_result(case)  # first: the reference the recovered case is measured against
        with self.recoveries().applied(case, loaded, engine) if case.recovery else nullcontext(engine) as engine:
            started = time.perf_counter()
            with self.ui.progress(f"{case.task} {case.model_name} {case.label}") as advance:
                try:
                    scores, outputs = task.evaluate(items, shots, self.settings, Runner(engine, advance))
                except NonFinite as err:
                    raise NonFinite(f"{case.task} on {case.model_name} {case.label}{_item_of(err.request, items)}: "
                                    f"{err}") from None
            seconds = (time.perf_counter() - started) / max(1, len(items))
        if len(scores) != len(items) or len(outputs) != len(items):
            raise KickError(f"{case.task}: {len(scores)} scores and {len(outputs)} outputs for {len(items)} items")
        result = TaskResult(task.name, task.metric, [i.id for i in items], [float(x) for x in scores], list(outputs))
        check_scores(result.scores, result.item_ids, f"{case.task} on {case.model_name} {case.label}",
                     allow_nan=self.judged_task(case.task))  # never a verdict, never a stored baseline
        if not case.is_dense:
            self._compressed.setdefault((*case.variant, case.task, case.recovery), (result, seconds))
        return result

    # --- recovery (--kick-recover) --------------------------------------------------------------

    def recoveries(self):
        if self._recoveries is None:
            from pytest_kick.recover.session import Recoveries

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
        return self.recoveries().record(case, self.model(case.model), self.task(case.task), dense, compressed,
                                        recovered, seconds)

    def baseline_key(self, case: KickCase) -> dict:
        return self.denses.key(case)

    def dense(self, case: KickCase):
        """(dense TaskResult, status, path) for the case's (model, task): see dense.DenseBaselines.get."""
        return self.denses.get(case)

    def write_flips(self, case: KickCase, dense: TaskResult, compressed: TaskResult) -> Path | str:
        """A JSONL of the items whose score changed, so a person can read what knowledge was lost."""
        _, _, items = self.data(case.task)
        task = self.task(case.task)
        higher_is_better = task.higher_is_better
        explain = getattr(task, "explain", None)  # a judged task: the judge's reasons beside each answer
        by_id = {i.id: i for i in items}
        path = self.config.cache_dir / "reports" / case.model_name / f"{case.task.replace(':', '-')}-{case.compressor}-{case.ratio.replace(':', 'of')}{'+' + case.recovery if case.recovery else ''}.jsonl"
        lines = []
        for k, item_id in enumerate(dense.item_ids):
            d, c = dense.scores[k], compressed.scores[k]
            what = change(d, c, higher_is_better)
            if what is None:
                continue
            item = by_id.get(item_id)
            lines.append(json.dumps({
                "id": item_id, "change": what,
                **flips.item_fields(item),  # multiple choice: the choices and the correct one, apart
                "dense_output": dense.outputs[k], "compressed_output": compressed.outputs[k],
                "dense_score": d, "compressed_score": c,
                **({} if explain is None or item is None else {"dense_judge": explain(item, dense.outputs[k]),
                                                               "compressed_judge": explain(item, compressed.outputs[k])}),
            }, ensure_ascii=False) + "\n")
        try:
            atomic_write(path, "".join(lines))
        except OSError as err:  # a read-only cache still gates; only this report is lost
            return f"no flip report: {path.parent} is not writable ({err.strerror or err})"
        return path


def _item_of(request, items) -> str:
    """' (item ID)' for the first item whose question the request's text holds, else ''."""
    text = "" if request is None else (getattr(request, "context", "") or "") + (getattr(request, "text", "") or "")
    found = next((i.id for i in items if getattr(i, "question", None) and str(i.question) in text), None)
    return "" if found is None else f" (item {found})"


def _rebuild_hint(weights_dir, cache_dir) -> str:
    """What to do about damaged weights: a converted copy in the cache can be converted again."""
    if weights_dir is not None and Path(weights_dir).resolve().is_relative_to(Path(cache_dir).resolve() / "models"):
        return f"delete {weights_dir} to convert the model again"
    return "restore or rebuild the model"
