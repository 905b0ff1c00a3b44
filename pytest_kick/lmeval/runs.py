"""Reading lm-eval output directories, and pairing two of them document by document.

An lm-eval run with ``--output_path OUT --log_samples`` writes, under ``OUT/<model>/`` (or ``OUT`` itself),
``results_<time>.json`` and ``samples_<task>_<time>.jsonl``: one JSON line per (document, filter) with
``doc_id``, ``doc_hash``, ``prompt_hash``, ``target_hash``, ``target``, ``arguments`` (a list of argument
lists, or, since 0.4.3, ``{"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}``), ``resps``, ``filtered_resps``,
``filter``, ``metrics`` (the names) and each per-item metric's value. The newest results file is read, and
the samples files of the same time. Pairing refuses, naming the field, two runs that are not the same
evaluation: task version, few-shot count, limit, documents, or any document's hashes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, json_hash

HASHES = ("doc_hash", "prompt_hash", "target_hash")  # per document: what lm-eval fed the model, and the target


@dataclass(frozen=True)
class Run:
    """One lm-eval run: its results file, and per task the samples of its first filter by doc_id."""

    directory: Path
    results_file: Path
    results: dict
    samples: dict  # task -> {doc_id: sample}, in file order
    sample_files: dict  # task -> Path
    filters: dict  # task -> the filter whose samples are read (lm-eval's "none" unless the task has others)

    def value(self, section: str, task: str):
        found = self.results.get(section)
        return found.get(task) if isinstance(found, dict) else None

    @property
    def limit(self):
        config = self.results.get("config")
        return config.get("limit") if isinstance(config, dict) else None

    @property
    def model_name(self) -> str:
        """The model's last path component (lm-eval's model_name is a hub id or the model's directory)."""
        name = str(self.results.get("model_name") or "").rstrip("/").rsplit("/", 1)[-1]
        return name or self.directory.name

    def fingerprint(self) -> str:
        """A hash of the results file and every samples file read: what this run's cached results stand for."""
        files = [self.results_file, *(self.sample_files[t] for t in sorted(self.sample_files))]
        return json_hash([[f.name, file_hash(f)] for f in files])


def read_run(directory: Path, where: str) -> Run:
    """The newest run in ``directory`` (the ``--output_path`` or its model folder); KickError naming ``where``."""
    if not directory.is_dir():
        raise KickError(f"{where}: {directory} is not a directory")
    results = sorted(directory.glob("results_*.json"))
    if not results:
        results = sorted(directory.glob("*/results_*.json"))
        folders = {r.parent for r in results}
        if len(folders) > 1:
            names = ", ".join(sorted(f.name for f in folders))
            raise KickError(f"{where}: {directory} holds the runs of several models ({names}): give one folder")
    if not results:
        raise KickError(f"{where}: {directory} holds no lm-eval results_*.json (run lm-eval with --output_path)")
    newest = max(results, key=lambda p: p.name)
    stamp = newest.stem.removeprefix("results_")
    try:
        content = json.loads(newest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise KickError(f"{where}: cannot read {newest}: {err}") from None
    if not isinstance(content, dict) or not isinstance(content.get("results"), dict):
        raise KickError(f"{where}: {newest} is not an lm-eval results file (no 'results' object)")
    samples, files, filters = {}, {}, {}
    for path in sorted(newest.parent.glob(f"samples_*_{stamp}.jsonl")):
        task = path.name.removeprefix("samples_").removesuffix(f"_{stamp}.jsonl")
        filters[task], samples[task] = _samples(path, where)
        files[task] = path
    if not samples:
        raise KickError(
            f"{where}: {newest.parent} has no samples_*_{stamp}.jsonl beside {newest.name}: "
            f"run lm-eval with --log_samples"
        )
    return Run(newest.parent, newest, content, samples, files, filters)


def _samples(path: Path, where: str) -> tuple[str, dict]:
    """(filter, {doc_id: sample}) of one samples file, the first filter it holds."""
    found: dict = {}
    chosen = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise KickError(f"{where}: cannot read {path}: {err}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except ValueError:
            raise KickError(f"{where}: {path} line {number} is not JSON") from None
        if not isinstance(sample, dict) or "doc_id" not in sample:
            raise KickError(f"{where}: {path} line {number} has no doc_id: not an lm-eval sample")
        name = sample.get("filter", "none")
        chosen = name if chosen is None else chosen
        if name == chosen:
            if sample["doc_id"] in found:
                raise KickError(f"{where}: {path} holds doc_id {sample['doc_id']} twice")
            found[sample["doc_id"]] = sample
    if not found:
        raise KickError(f"{where}: {path} holds no sample")
    return chosen, found


def arguments(sample: dict) -> list[list]:
    """The sample's requests' arguments as lists: ``[[context, continuation], ...]`` (log-likelihood) or
    ``[[context, generation kwargs]]``, from either of lm-eval's two layouts."""
    found = sample.get("arguments")
    if isinstance(found, dict):
        return [
            [args[k] for k in sorted(args, key=lambda a: int(a.removeprefix("arg_")))]
            if isinstance(args, dict)
            else [args]
            for _, args in sorted(found.items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1]))
        ]
    return [list(a) if isinstance(a, (list, tuple)) else [a] for a in found or []]


def number(value) -> float | None:
    """A per-item metric value as a float (True counts 1), or None when it is not one number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


@dataclass(frozen=True)
class Pair:
    """One task present in both runs, its documents paired, and the per-item metric gated."""

    task: str
    metric: str
    higher_is_better: bool
    doc_ids: tuple  # in the dense run's file order
    dense: dict  # doc_id -> sample
    compressed: dict
    version: str
    shots: object
    multiple_choice: bool


def pair(dense: Run, compressed: Run, flag: str) -> list[Pair]:
    """Every task with samples in both runs, paired; KickError naming the field two runs differ in."""
    common = [t for t in dense.samples if t in compressed.samples]
    if not common:
        raise KickError(
            f"{flag}: no task has samples in both runs ({', '.join(dense.samples)} in {dense.directory}; "
            f"{', '.join(compressed.samples)} in {compressed.directory})"
        )
    return [_pair(task, dense, compressed, flag) for task in common]


def _differ(flag: str, task: str, field: str, a, b, dense: Run, compressed: Run) -> KickError:
    return KickError(
        f"{flag}: lm-eval task {task}: the two runs differ in {field} ({a!r} in {dense.results_file}, {b!r} in "
        f"{compressed.results_file}): not the same evaluation, so their items cannot be paired"
    )


def _pair(task: str, dense: Run, compressed: Run, flag: str) -> Pair:
    for field, a, b in (
        ("task version", dense.value("versions", task), compressed.value("versions", task)),
        ("few-shot count (n-shot)", dense.value("n-shot", task), compressed.value("n-shot", task)),
        ("limit", dense.limit, compressed.limit),
        ("filter", dense.filters[task], compressed.filters[task]),
    ):
        if a != b:
            raise _differ(flag, task, field, a, b, dense, compressed)
    ours, theirs = dense.samples[task], compressed.samples[task]
    if set(ours) != set(theirs):
        only = sorted(set(ours) ^ set(theirs), key=str)[:5]
        raise KickError(
            f"{flag}: lm-eval task {task}: the two runs differ in doc_id: {len(ours)} documents in "
            f"{dense.sample_files[task]}, {len(theirs)} in {compressed.sample_files[task]} (in one only: {only})"
        )
    for doc_id, sample in ours.items():
        other = theirs[doc_id]
        for field in HASHES:
            if sample.get(field) != other.get(field):
                raise KickError(
                    f"{flag}: lm-eval task {task}: the two runs differ in {field} of doc_id {doc_id} "
                    f"({dense.sample_files[task].name} vs {compressed.sample_files[task].name}): not the same "
                    f"item, so the runs cannot be paired"
                )
    metric = _metric(task, ours, theirs, dense, flag)
    direction = (dense.value("higher_is_better", task) or {}).get(metric, True)
    config = dense.value("configs", task) or {}
    first = next(iter(ours.values()))
    choice = config.get("output_type") == "multiple_choice" or (
        config.get("output_type") is None and len(arguments(first)) > 1
    )
    return Pair(
        task,
        metric,
        bool(direction),
        tuple(ours),
        ours,
        theirs,
        str(dense.value("versions", task)),
        dense.value("n-shot", task),
        choice,
    )


def _metric(task: str, ours: dict, theirs: dict, dense: Run, flag: str) -> str:
    """The first per-item metric the samples list whose every value, in both runs, is one number."""
    first = next(iter(ours.values()))
    names = first.get("metrics") if isinstance(first.get("metrics"), list) else []
    names = names or [k for k in first if k not in _NOT_METRICS]
    for name in names:
        if all(number(s.get(name)) is not None for run in (ours, theirs) for s in run.values()):
            return name
    raise KickError(
        f"{flag}: lm-eval task {task}: no per-item metric is one number per document in both runs "
        f"({', '.join(map(str, names)) or 'none listed'} in {dense.sample_files[task]})"
    )


_NOT_METRICS = {
    "doc_id",
    "doc",
    "target",
    "arguments",
    "resps",
    "filtered_resps",
    "filter",
    "metrics",
    *HASHES,
}
