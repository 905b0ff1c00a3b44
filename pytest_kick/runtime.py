"""The per-process state of a kick session: loaded models, which compressed variant each one is in,
task data, and dense baselines. Fixtures call into one Runtime; it hands each layer what it needs.

A model is loaded once per process. Compressed variants are derived from it in place and undone by
copying back the dense weights, so any number of (compressor, ratio) cases cost one model in memory
plus one copy of its decoder linears; items are ordered so each variant is built once per process.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from pytest_kick import __version__, tasks
from pytest_kick.compress import spec as ratio_spec
from pytest_kick.baseline import BaselineStore, TaskResult
from pytest_kick.baseline_files import BaselineFiles
from pytest_kick.config import KickConfig
from pytest_kick.errors import KickError, KickWarning
from pytest_kick.files import atomic_write
from pytest_kick.gate import change
from pytest_kick.hashing import json_hash
from pytest_kick.models import registry
from pytest_kick.tasks.base import Settings


@dataclass(frozen=True)
class KickCase:
    """One collected item: a task on one model, dense or one (compressor, ratio), maybe after a recovery."""

    task: str
    model: str  # as the user typed it (alias, hub id or directory)
    compressor: str | None = None
    ratio: str | None = None  # canonical spec: "0.5", "2:4", "w4g128", "w8a8", "as-given"
    recovery: str | None = None  # recovery method applied to the compressed model (prompt, idp, lora)

    @property
    def is_dense(self) -> bool:
        return self.compressor is None

    @property
    def model_name(self) -> str:
        return registry.resolve(self.model).name

    @property
    def label(self) -> str:
        if self.is_dense:
            return "dense"
        label = self.compressor if self.ratio == ratio_spec.CHECKPOINT else f"{self.compressor}@{self.ratio}"
        return label + (f"+{self.recovery}" if self.recovery else "")

    @property
    def id(self) -> str:
        """Test id: ``[variant-]model-dense`` or ``[variant-]model-compressor-ratio[+recovery]``."""
        variant = self.task.split(":", 1)[1] + "-" if ":" in self.task else ""
        if self.is_dense:
            return f"{variant}{self.model_name}-dense"
        recovery = f"+{self.recovery}" if self.recovery else ""
        if self.ratio == ratio_spec.CHECKPOINT:
            return f"{variant}{self.model_name}-{self.compressor}{recovery}"
        return f"{variant}{self.model_name}-{self.compressor}-{self.ratio}{recovery}"

    @property
    def variant(self) -> tuple:
        return (self.model, self.compressor, self.ratio)

    @property
    def group(self) -> str:
        """xdist group: every item of one (model, compressor, ratio) runs on one worker, whatever the task."""
        return KickCase("", self.model, self.compressor, self.ratio).id


def cases_for(task: str, config: KickConfig) -> list[KickCase]:
    found = []
    for model in config.models:
        found.append(KickCase(task, model))
        for c, r in config.variants:
            found.append(KickCase(task, model, c, r))
            found.extend(KickCase(task, model, c, r, method) for method in config.recover)
    return found


class SilentUI:
    """What the runtime tells a person; the plugin supplies one that writes to the terminal."""

    def message(self, text: str) -> None:
        pass

    def progress(self, description: str):
        return nullcontext(lambda done, total: None)


def package_versions() -> dict:
    found = {"pytest-kick": __version__}
    for package in ("torch", "transformers"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


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
        self.baselines = BaselineStore(config.cache_dir)
        self.baseline_files = None if config.baseline_dir is None else BaselineFiles(
            config.baseline_dir, run_id, regen=config.regen, strict_env=config.strict_env)
        self.settings = Settings(config.protocol, config.shots, config.seed, config.limit, config.data_dir)
        self._models: dict = {}
        self._backups: dict = {}  # model -> DenseWeights
        self._undo: dict = {}  # model -> undo of replaced modules (int8), or None
        self._calibration: dict = {}  # model -> calibration token ids
        self._variant: dict = {}  # model -> (compressor, ratio) currently applied, or None for dense
        self.compression: dict = {}  # (model, compressor, ratio) -> CompressionReport
        self._data: dict = {}
        self._engines: dict = {}  # model -> engine
        self._dense: dict = {}  # (model, task) -> (TaskResult, status, path), once per process
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

    # --- data ---------------------------------------------------------------------------------

    def data(self, task_name: str):
        """(dataset, shots, evaluated items) of a task, loaded once."""
        if task_name not in self._data:
            task = tasks.get(task_name)
            dataset = task.load(self.settings)
            if self.settings.data_dir is not None and dataset.source.startswith("bundled:"):
                layout = getattr(importlib.import_module(type(task).__module__), "LOCAL_LAYOUT", "its files")
                warnings.warn(KickWarning(
                    f"--kick-data-dir {self.settings.data_dir} holds no {task.family} data, so {task_name} uses the "
                    f"bundled sample; to use your own copy, add {layout}"), stacklevel=2)
            shots, items = task.split(dataset, self.settings)
            self._data[task_name] = (dataset, shots, items)
        return self._data[task_name]

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
        task = tasks.get(case.task)
        _, shots, items = self.data(case.task)
        engine = self.engine(case.model, not case.is_dense)
        if case.recovery:
            self.compressed_result(case)  # first: the reference the recovered case is measured against
        with self.recoveries().applied(case, loaded, engine) if case.recovery else nullcontext(engine) as engine:
            started = time.perf_counter()
            with self.ui.progress(f"{case.task} {case.model_name} {case.label}") as advance:
                scores, outputs = task.evaluate(items, shots, self.settings, Runner(engine, advance))
            seconds = (time.perf_counter() - started) / max(1, len(items))
        if len(scores) != len(items) or len(outputs) != len(items):
            raise KickError(f"{case.task}: {len(scores)} scores and {len(outputs)} outputs for {len(items)} items")
        result = TaskResult(task.name, task.metric, [i.id for i in items], [float(x) for x in scores], list(outputs))
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
        return self.recoveries().record(case, self.model(case.model), tasks.get(case.task), dense, compressed,
                                        recovered, seconds)

    def baseline_key(self, case: KickCase) -> dict:
        task = tasks.get(case.task)
        dataset, shots, items = self.data(case.task)
        loaded = self.model(case.model)
        return {
            "model": loaded.identity,
            "task": task.name,
            "task_version": task.version,
            "template": task.template_hash(self.settings),
            "protocol": self.settings.protocol,
            "shots": [s.id for s in shots],
            "items": json_hash([i.id for i in items]),
            "n": len(items),
            "data": {"source": dataset.source, "sha256": dataset.content_hash},
            "decoding": "greedy",
            "dtype": loaded.dtype,
            "device_type": loaded.device.split(":")[0],
            "versions": package_versions(),
        }

    def dense(self, case: KickCase):
        """(dense TaskResult, status, path) for the case's (model, task).

        From the cache: "computed" once, by the call that ran the dense model; every later use, in this
        process or another, says "cached". From --kick-baseline-dir files: "written", "regenerated" or
        "file" (read; environment differences warned about, see baseline_files).
        """
        memo = (case.model, case.task)
        if memo in self._dense:
            result, _, path = self._dense[memo]
            return result, "file" if self.baseline_files is not None else "cached", path
        key = self.baseline_key(case)
        dense_case = KickCase(case.task, case.model)
        if self.baseline_files is not None:
            loaded = self.model(case.model)
            envelope = {**key, "batch_size": self.config.batch_size, "device": loaded.device}
            self._dense[memo] = self.baseline_files.get_or_compute(
                case.model_name, case.task, envelope, lambda: self.evaluate(dense_case),
                warn=lambda message: warnings.warn(KickWarning(message), stacklevel=2))
        else:
            self._dense[memo] = self.baselines.get_or_compute(case.model_name, case.task, key,
                                                              lambda: self.evaluate(dense_case))
        return self._dense[memo]

    def write_flips(self, case: KickCase, dense: TaskResult, compressed: TaskResult) -> Path | str:
        """A JSONL of the items whose score changed, so a person can read what knowledge was lost."""
        _, _, items = self.data(case.task)
        higher_is_better = tasks.get(case.task).higher_is_better
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
                "question": item and item.question, "answers": item and list(item.answers),
                "dense_output": dense.outputs[k], "compressed_output": compressed.outputs[k],
                "dense_score": d, "compressed_score": c,
            }, ensure_ascii=False) + "\n")
        try:
            atomic_write(path, "".join(lines))
        except OSError as err:  # a read-only cache still gates; only this report is lost
            return f"no flip report: {path.parent} is not writable ({err.strerror or err})"
        return path
