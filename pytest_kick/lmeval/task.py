"""An lm-eval task as a pytest-kick task (``lmeval:<task>``): its items are the documents both runs scored, and
evaluating it on a "model" (one of the two runs, engine.py) reads that run's stored per-item metric and
response. Scoring is lm-eval's own, as it logged it: nothing is recomputed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import json_hash
from pytest_kick.lmeval.runs import Pair, Run, arguments, number
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import subset

FAMILY = "lmeval"
CHANCE_METRICS = ("acc", "acc_norm", "acc_mutual_info")  # multiple choice: 1 / choices when nothing is known


@dataclass(frozen=True)
class Doc:
    """One lm-eval document: its prompt (the first request's context), target, and choices when multiple choice."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_id: object  # as lm-eval wrote it (an int, usually)
    choices: tuple[str, ...] = ()
    label: int | None = None  # the correct choice, when the target is its index


class LmevalTask:
    family = FAMILY

    def __init__(self, found: Pair, dense: Run, compressed: Run):
        self.pair = found
        self.runs = (dense, compressed)
        self.name = f"{FAMILY}:{found.task}"
        self.version = f"lm-eval {found.version}, filter {dense.filters[found.task]}"
        self.metric = found.metric
        self.higher_is_better = found.higher_is_better
        self.floor = 0.0 if found.higher_is_better else None
        if found.multiple_choice and found.metric in CHANCE_METRICS:
            self.chance = lambda item: 1.0 / len(item.choices) if item.choices else 0.0
        self.docs = tuple(_doc(doc_id, found.dense[doc_id], found.multiple_choice) for doc_id in found.doc_ids)
        stored = [number(s.get(found.metric)) for run in (found.dense, found.compressed) for s in run.values()]
        if all(v is not None and 0.0 <= v <= 1.0 for v in stored):  # acc, exact_match, f1 ...: the sequential gate
            self.score_range = (0.0, 1.0)

    def load(self, settings: Settings) -> Dataset:
        dense = self.runs[0]
        return Dataset(self.docs, f"lm-eval:{dense.sample_files[self.pair.task]}", self.template_hash(settings))

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list, list]:
        return [], subset(dataset.examples, settings.limit, settings.seed, self.name)

    def template_hash(self, settings: Settings) -> str:
        """What lm-eval fed the model and scored against: every document's hashes, the metric, the filter."""
        samples = self.pair.dense
        return json_hash(
            [
                self.metric,
                self.version,
                [[str(d), samples[d].get("prompt_hash"), samples[d].get("doc_hash")] for d in samples],
            ]
        )

    def evaluate(self, items: Sequence[Doc], shots, settings: Settings, run) -> tuple[list[float], list[str]]:
        """The stored per-item metric and response of the run ``run``'s engine stands for."""
        side = getattr(getattr(run, "engine", None), "lmeval_side", None)
        if side not in (0, 1):
            raise KickError(
                f"{self.name} replays an lm-eval run: it is gated with --kick-from-lmeval, not evaluated on a model"
            )
        samples = (self.pair.dense, self.pair.compressed)[side]
        scores = [number(samples[item.doc_id].get(self.metric)) for item in items]
        outputs = [response(samples[item.doc_id], self.pair.multiple_choice) for item in items]
        if getattr(run, "progress", None):
            run.progress(len(items), len(items))
        return scores, outputs


def _doc(doc_id, sample: dict, multiple_choice: bool) -> Doc:
    args = arguments(sample)
    context = str(args[0][0]) if args and args[0] else ""
    target = sample.get("target")
    if multiple_choice:
        choices = tuple(str(a[1]) if len(a) > 1 else "" for a in args)
        label = _index(target, len(choices))
        answer = choices[label] if label is not None else str(target)
        return Doc(str(doc_id), context, (answer,), doc_id, choices, label)
    answers = tuple(str(t) for t in target) if isinstance(target, list) else (str(target),)
    return Doc(str(doc_id), context, answers, doc_id)


def _index(target, count: int) -> int | None:
    """The correct choice's index: lm-eval logs it as a number or its text ("0")."""
    if isinstance(target, str) and target.strip().isdigit():
        target = int(target)
    return target if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < count else None


def response(sample: dict, multiple_choice: bool) -> str:
    """What the model answered: the choice of highest log-likelihood (multiple choice), else the filtered reply."""
    found = sample.get("filtered_resps")
    if not isinstance(found, list) or not found:
        return ""
    if not multiple_choice:
        first = found[0]
        while isinstance(first, list) and first:
            first = first[0]
        return first if isinstance(first, str) else str(first)
    scores = [_loglikelihood(r) for r in found]
    if any(s is None for s in scores):
        return ""
    best = max(range(len(scores)), key=scores.__getitem__)
    args = arguments(sample)
    return str(args[best][1]).strip() if best < len(args) and len(args[best]) > 1 else str(best)


def _loglikelihood(reply) -> float | None:
    """A log-likelihood reply as lm-eval logs it: ``[ll, is_greedy]``, ``ll``, or their text."""
    if isinstance(reply, (list, tuple)) and reply:
        reply = reply[0]
    if isinstance(reply, str):
        try:
            return float(reply.strip("()[] ").split(",")[0])
        except ValueError:
            return None
    return number(reply)
