"""The judge as a task's scorer (the ``Scorer`` seam of tasks/scorers.py): one rating per item.

The item score is the judge's rating of the model's reply, 1 (``floor``) to 10, higher is better:
- pairwise (``kick``): the mean of the model's scores in the two orders (reference first, model first);
  a summary's score in one order is the mean of its four metric scores;
- single-answer grading (``strict``): the rating, averaged over the turns of a two-turn question.

An item whose judgment failed (a reply still unreadable after the re-asks, or a request that failed
after its retries; for a pairwise item, either order) is a judge error: its score is NaN — never 0,
never left out unnoticed — and ``figures`` marks it (``judge_error`` 1). errors.py says what a case does
with them. ``prepare(items, replies)`` judges a whole batch at once (concurrently, up to the backend's
concurrency); ``score`` / ``figures`` / ``explanation`` then read the stored judgment (an item not
prepared is judged on its own when first asked for).

``judge`` is a runner.Judge (scores parsed from free replies) or a judge with the same ``run`` that reads them
from probabilities (probability.py, served_probability.py); then ``figures`` holds ``judge_argmax`` too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

from pytest_kick.judge import parse
from pytest_kick.judge.protocols import SUMMARY_METRICS, prompts_hash
from pytest_kick.judge.runner import Judge, Outcome

NAN = float("nan")


@dataclass(frozen=True)
class ItemJudgment:
    score: float  # NaN for a judge error
    error: str = ""
    explanation: str = ""
    figures: dict = field(default_factory=dict)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


class JudgeScorer:
    floor = 1.0
    score_range = (1.0, 10.0)  # the judge's rating scale
    higher_is_better = True

    def __init__(self, judge: Judge, family):
        self.judge = judge
        self.family = family
        self.protocol = family.protocol
        self.needs_reference = family.needs_reference
        self.name = "judge-" + re.sub(r"[^A-Za-z0-9._-]+", "_", judge.model)
        self._memo: dict[tuple, ItemJudgment] = {}
        self.items_judged = 0
        self.item_errors = 0
        self.order_pairs = 0  # pairwise: items with both orders read
        self.order_disagreements = 0  # of which the two orders prefer different answers

    # --- judging ---------------------------------------------------------------------------------
    def _key(self, item, replies: Sequence[str]) -> tuple:
        return (str(item.id), tuple(str(r) for r in replies))

    def prepare(self, items: Sequence, replies: Sequence[Sequence[str]]) -> list[ItemJudgment]:
        """Judge every (item, replies) not judged yet, in one concurrent batch; the judgments in order."""
        keys = [self._key(i, r) for i, r in zip(items, replies)]
        todo = {}
        for key, item, reply in zip(keys, items, replies):
            if key not in self._memo and key not in todo:
                todo[key] = self.family.asks(item, list(reply))
        flat = [ask for asks in todo.values() for ask in asks]
        outcomes = iter(self.judge.run(flat))
        for key, asks in todo.items():
            self._memo[key] = self._combine(asks, [next(outcomes) for _ in asks])
        return [self._memo[k] for k in keys]

    def _combine(self, asks, outcomes: list[Outcome]) -> ItemJudgment:
        self.items_judged += 1
        labels = [f"[model as Assistant {a.model_slot}]" if self.family.pairwise else f"[turn {a.turn}]" for a in asks]
        explanation = "\n\n".join(f"{label}\n{o.explanation}" for label, o in zip(labels, outcomes))
        failed = [o.error for o in outcomes if o.reading is None]
        figures: dict[str, float] = {"judge_error": float(bool(failed))}
        keys = self._figure_keys(asks)
        if failed:
            self.item_errors += 1
            figures.update({k: NAN for k in keys})
            return ItemJudgment(NAN, "; ".join(dict.fromkeys(failed)), explanation, figures)
        readings = [o.reading for o in outcomes]
        score = sum(r.model for r in readings) / len(readings)
        argmaxes = [getattr(o, "argmax", None) for o in outcomes]
        if all(argmaxes):  # scores read from probabilities: the most likely scores, beside the expected ones
            figures["judge_argmax"] = sum(r.model for r in argmaxes) / len(argmaxes)
        if self.family.pairwise:
            # orders disagree when one prefers the model and the other the reference (or a tie vs not)
            a, b = readings[0], readings[1]
            disagree = _sign(a.model - a.reference) != _sign(b.model - b.reference)
            self.order_pairs += 1
            self.order_disagreements += disagree
            figures["order_disagreement"] = float(disagree)
            figures["judge_reference"] = sum(r.reference for r in readings) / len(readings)
            for metric in SUMMARY_METRICS:
                values = [dict(r.metrics)[metric] for r in readings if dict(r.metrics).get(metric) is not None]
                if values:
                    figures[f"judge_{metric}"] = sum(values) / len(values)
        elif len(asks) > 1:
            for ask, r in zip(asks, readings):
                figures[f"judge_turn{ask.turn}"] = r.model
        return ItemJudgment(score, "", explanation, figures)

    def _figure_keys(self, asks) -> list[str]:
        if self.family.pairwise:
            keys = ["order_disagreement", "judge_reference"]
            if asks and asks[0].reader == "pair_lines":
                keys += [f"judge_{m}" for m in SUMMARY_METRICS]
            return keys
        return [f"judge_turn{a.turn}" for a in asks] if len(asks) > 1 else []

    def judgment(self, item, replies: Sequence[str]) -> ItemJudgment:
        key = self._key(item, replies)
        if key not in self._memo:
            self.prepare([item], [list(replies)])
        return self._memo[key]

    # --- the Scorer seam -------------------------------------------------------------------------
    def score(self, item, replies: Sequence[str]) -> float:
        """The judge's rating of the replies (NaN when the judge failed on this item)."""
        return self.judgment(item, replies).score

    def figures(self, item, replies: Sequence[str]) -> dict[str, float]:
        return dict(self.judgment(item, replies).figures)

    def explanation(self, item, replies: Sequence[str]) -> str:
        """The judge's replies for this item (each order or turn labelled), for the flip report."""
        judgment = self.judgment(item, replies)
        return judgment.explanation if not judgment.error else f"{judgment.error}\n\n{judgment.explanation}".strip()

    def fingerprint(self) -> str:
        return ":".join(
            (
                "judge",
                type(self.family).__name__,
                self.protocol,
                self.judge.endpoint,
                self.judge.model,
                f"prompts={prompts_hash()}",
                f"reasks={self.judge.reasks}",
                f"parser={parse.VERSION}",
            )
            + ((f"scoring={scoring}",) if (scoring := getattr(self.judge, "scoring", "text")) != "text" else ())
        )

    # --- reporting -------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Counts for the session summary: requests, cache hits, tokens, judge errors, order disagreement."""
        found = self.judge.stats.as_dict()
        found.update(items=self.items_judged, item_errors=self.item_errors)
        if self.family.pairwise:
            found.update(
                order_pairs=self.order_pairs,
                order_disagreements=self.order_disagreements,
                order_disagreement_rate=(self.order_disagreements / self.order_pairs if self.order_pairs else math.nan),
            )
        return found
