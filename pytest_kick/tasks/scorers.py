"""Scoring free-form answers (summaries, chat replies): ROUGE against reference texts, or an LLM judge.

LLM-KICK scores its summarization and instruction-following tasks with a GPT-4 judge. Offline, without a
judge, pytest-kick compares a model's replies with reference texts by ROUGE (Google's ``rouge-score``,
``use_stemmer=True``): a crude but deterministic proxy, fine for "did compression change the answers",
not for "how good are they".

The seam: a task that scores free text (``summarization:*``, ``instruction:*``) holds a ``scorer`` and
asks it for one number per item. A scorer sees the item and the model's replies, one per user turn
(a single reply for single-turn tasks). Items offer ``question`` (the story / the first user turn),
``turns`` (the user turns, instruction tasks), ``references`` (reference replies, one per turn; empty
when there are none) and ``category``.

How an LLM judge plugs in: write a class with the ``Scorer`` attributes whose ``score`` asks the judge
model (e.g. MT-Bench's single-answer grading prompt, with ``item.references`` where the judge prompt
wants a reference) and returns its rating; set ``needs_reference = False`` when it can judge items
without references (MT-Bench then keeps all 80 questions), ``floor`` to its lowest rating, and give it a
``name`` (it becomes the task's metric and enters the template hash, so judge and ROUGE baselines never
mix). Then build the task with it: ``Summarization("small", scorer=judge)``, ``Instruction("mtbench",
scorer=judge)``. ``--kick-judge`` does exactly that with ``judge.scorer.JudgeScorer`` (see
judge/session.py); a scorer with ``prepare(items, replies)`` is handed each batch first.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

from pytest_kick.errors import KickError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class Scorer(Protocol):
    name: str  # "rougeL", "judge-gpt-4": the task's metric is built from it
    floor: float | None  # the score of an empty or useless reply
    needs_reference: bool  # items without references cannot be scored (the task leaves them out)

    def score(self, item, replies: Sequence[str]) -> float:
        """One number for the model's replies to ``item`` (higher is better)."""
        ...

    def figures(self, item, replies: Sequence[str]) -> dict[str, float]:
        """Extra per-item figures, averaged into the task's report details (may be empty)."""
        ...

    def fingerprint(self) -> str:
        """Everything that changes the scores (enters the task's template hash)."""
        ...


_ROUGE = None


def _rouge():
    global _ROUGE
    if _ROUGE is None:
        try:
            from rouge_score import rouge_scorer
        except ImportError:
            raise KickError("ROUGE scoring needs the rouge-score package: pip install rouge-score") from None
        _ROUGE = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    return _ROUGE


def rouge(reference: str, prediction: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures of ``prediction`` against ``reference`` (0 for an empty prediction)."""
    scores = _rouge().score(reference, prediction)
    return {kind: float(scores[kind].fmeasure) for kind in ROUGE_TYPES}


class RougeScorer:
    """ROUGE F-measure of each reply against the reference for its turn, averaged over the turns.

    ``kind`` ("rougeL" by default) is the per-item score; ``figures`` gives ROUGE-1/2/L (and, for
    multi-turn items, the same per turn: ``rougeL_turn2``).
    """

    floor = 0.0
    score_range = (0.0, 1.0)  # an F1
    needs_reference = True

    def __init__(self, kind: str = "rougeL"):
        if kind not in ROUGE_TYPES:
            raise ValueError(f"unknown ROUGE type {kind!r}; one of {', '.join(ROUGE_TYPES)}")
        self.kind = kind
        self.name = kind

    def _per_turn(self, item, replies: Sequence[str]) -> list[dict[str, float]]:
        references = tuple(item.references)
        if not references:
            raise KickError(f"item {item.id!r} has no reference text; ROUGE cannot score it")
        replies = list(replies)[: len(references)]
        replies += [""] * (len(references) - len(replies))  # a missing reply scores 0
        return [rouge(ref, reply) for ref, reply in zip(references, replies)]

    def score(self, item, replies: Sequence[str]) -> float:
        turns = self._per_turn(item, replies)
        return sum(t[self.kind] for t in turns) / len(turns)

    def figures(self, item, replies: Sequence[str]) -> dict[str, float]:
        turns = self._per_turn(item, replies)
        found = {kind: sum(t[kind] for t in turns) / len(turns) for kind in ROUGE_TYPES}
        if len(turns) > 1:
            for k, t in enumerate(turns, 1):
                found.update({f"{kind}_turn{k}": t[kind] for kind in ROUGE_TYPES})
        return found

    def fingerprint(self) -> str:
        import importlib.metadata

        try:
            version = importlib.metadata.version("rouge-score")
        except importlib.metadata.PackageNotFoundError:
            version = "missing"
        return f"rouge-score:{version}:stemmer:{self.kind}:f-measure"


def prepare_judgments(scorer: Scorer, items: Sequence, replies: Sequence[Sequence[str]]) -> None:
    """Let a scorer that can (a judge: ``prepare``) score a whole batch at once, before it is asked item by item."""
    prepare = getattr(scorer, "prepare", None)
    if prepare is not None and items:
        prepare(list(items), [list(r) for r in replies])


def mean_figures(scorer: Scorer, items: Sequence, replies: Sequence[Sequence[str]]) -> dict[str, float]:
    """The mean of each of the scorer's per-item figures (keys present for every item), over the items where
    the figure is a number (a judge gives NaN for an item it failed on; ``judge_error`` counts those)."""
    per_item = [scorer.figures(item, r) for item, r in zip(items, replies)]
    if not per_item:
        return {}
    keys = [k for k in per_item[0] if all(k in f for f in per_item)]
    found = {}
    for k in keys:
        values = [f[k] for f in per_item if not math.isnan(f[k])]
        found[k] = sum(values) / len(values) if values else math.nan
    return found
