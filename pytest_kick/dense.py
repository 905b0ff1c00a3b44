"""The dense baselines of a session: per (model, task), the dense model's per-item results, computed once
and kept in the cache (baseline.py) or in reviewable files (baseline_files.py, --kick-baseline-dir).

A stored result is checked before use: a non-finite score (NaN outside a judge error, infinity anywhere)
is refused like a corrupt file, with its path. A stored result with judge errors has its outputs judged
again (only what failed is asked again; the model is not run).
"""

from __future__ import annotations

import math
import warnings

from pytest_kick.baseline import BaselineStore, TaskResult
from pytest_kick.baseline_files import BaselineFiles
from pytest_kick.cases import KickCase
from pytest_kick.errors import KickWarning
from pytest_kick.finite import NonFinite, check_scores
from pytest_kick.hashing import json_hash
from pytest_kick.versions import package_versions


class DenseBaselines:
    """Dense results for the runtime's cases; ``runtime`` gives the model, task, data and evaluation."""

    def __init__(self, runtime, config, run_id: str = "local"):
        self.runtime = runtime
        self.store = BaselineStore(config.cache_dir)
        self.files = (
            None
            if config.baseline_dir is None
            else BaselineFiles(config.baseline_dir, run_id, regen=config.regen, strict_env=config.strict_env)
        )
        self._memo: dict = {}  # (model, task) -> (TaskResult, status, path), once per process

    def key(self, case: KickCase) -> dict:
        """Everything that changes the case's dense results: the cache key of its baseline."""
        task = self.runtime.task(case.task)
        dataset, shots, items = self.runtime.data(case.task)
        loaded = self.runtime.model(case.model)
        return {
            "model": loaded.identity,
            "task": task.name,
            "task_version": task.version,
            "template": task.template_hash(self.runtime.settings),
            "protocol": self.runtime.settings.protocol,
            "shots": [s.id for s in shots],
            "items": json_hash([i.id for i in items]),
            "n": len(items),
            "data": {"source": dataset.source, "sha256": dataset.content_hash},
            "decoding": "greedy",
            "dtype": loaded.dtype,
            "device_type": loaded.device.split(":")[0],
            "versions": package_versions(),
        }

    def get(self, case: KickCase):
        """(dense TaskResult, status, path) for the case's (model, task).

        From the cache: "computed" once, by the call that ran the dense model; every later use, in this
        process or another, says "cached". From --kick-baseline-dir files: "written", "regenerated" or
        "file" (read; environment differences warned about, see baseline_files).
        """
        memo = (case.model, case.task)
        if memo in self._memo:
            result, _, path = self._memo[memo]
            return result, "file" if self.files is not None else "cached", path
        key = self.key(case)
        dense_case = KickCase(case.task, case.model)
        if self.files is not None:
            loaded = self.runtime.model(case.model)
            envelope = {**key, "batch_size": self.runtime.config.batch_size, "device": loaded.device}
            self._memo[memo] = self.files.get_or_compute(
                case.model_name,
                case.task,
                envelope,
                lambda: self.runtime.evaluate(dense_case),
                warn=lambda message: warnings.warn(KickWarning(message), stacklevel=2),
            )
        else:
            self._memo[memo] = self.store.get_or_compute(
                case.model_name, case.task, key, lambda: self.runtime.evaluate(dense_case)
            )
        result, status, path = self._memo[memo]
        if status in ("computed", "written", "regenerated"):  # evaluated now: Runtime.evaluate checked it
            return self._memo[memo]
        try:
            check_scores(
                result.scores,
                result.item_ids,
                f"{case.task} on {case.model_name} dense",
                allow_nan=self.runtime.judged_task(case.task),
            )
        except NonFinite as err:  # written by an older version, or edited: refused like a corrupt file
            del self._memo[memo]
            raise NonFinite(
                f"corrupt dense baseline {path}: {err}; it was left untouched: delete it to recompute"
            ) from None
        if any(math.isnan(x) for x in result.scores):  # judge errors: asked again where the judge failed
            self._memo[memo] = (self._rejudge(case.task, result), status, path)
        return self._memo[memo]

    def _rejudge(self, task_name: str, result: TaskResult) -> TaskResult:
        """A stored dense result with judge errors (NaN): its stored outputs judged again (replies the judge
        gave are cached, so only what failed is asked again; the model is not run)."""
        task = self.runtime.task(task_name)
        by_id = {i.id: i for i in self.runtime.data(task_name)[2]}
        if not hasattr(task, "score_outputs") or not all(i in by_id for i in result.item_ids):
            return result
        scores = task.score_outputs([by_id[i] for i in result.item_ids], result.outputs)
        return TaskResult(
            result.task, result.metric, list(result.item_ids), [float(x) for x in scores], list(result.outputs)
        )
