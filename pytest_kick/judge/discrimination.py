"""The discrimination check: before a judged task's verdicts count, can the judge tell good answers from bad?

On the task's own evaluated items, the judge scores each item's reference answer against three degraded copies
of it (``DEGRADATIONS``): another item's reference answer, the answer's words shuffled, the answer cut to its
first sentence (a copy identical to the reference, e.g. a one-sentence answer, is not asked). With the task's
own judge protocol: pairwise (``kick``) asks each comparison in both orders, the degraded copy standing where
the model's answer stands; single grading (``strict``) rates the reference and the copy on their own. A
comparison prefers the reference when its score (averaged over the two orders) is above the copy's; a tie does
not. Under the null hypothesis the judge prefers the reference at most half the time: an exact one-sided
binomial test of the preferences at ``alpha``. A judge not significantly better than chance is not fit to gate
the task: ``require`` makes every case of it inconclusive, saying why and what to do. A judge that fails (judge
errors) on more than judge/errors.py's share of the comparisons makes them judge errors instead.

The asks go through the session's judge (its reply cache, its counts), so a rerun asks the judge nothing.
``Check.record()`` (the case record's ``discrimination``) holds the figures reports show: the preference
rate per degradation and, for pairwise protocols, how often the two orders disagree (position disagreement).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import pytest

from pytest_kick.hashing import text_hash
from pytest_kick.judge.errors import MAX_ERROR_SHARE, JudgeErrorsExceeded
from pytest_kick.record import Verdict, put

DEGRADATIONS = {
    "other": "another item's answer",
    "shuffled": "its words shuffled",
    "first_sentence": "cut to its first sentence",
}
ALPHA = 0.05  # when the session has no --kick-alpha
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (., ! or ? before a space) or line break."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()


def shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def references(item) -> tuple[str, ...]:
    """The item's reference answer, one per turn; () when it has none for every turn."""
    turns = getattr(item, "turns", None) or (None,)
    found = tuple(str(r) for r in (getattr(item, "references", ()) or ())[: len(turns)])
    return found if len(found) == len(turns) and all(r.strip() for r in found) else ()


def degraded_copies(items: Sequence, seed: int) -> list[tuple[object, tuple[str, ...], str, tuple[str, ...]]]:
    """(item, reference answers, degradation, degraded answers) for every item with references and every
    degradation that changes its answer. Shuffles are seeded by ``seed`` and the item's id."""
    usable = [(item, references(item)) for item in items]
    usable = [(item, refs) for item, refs in usable if refs]
    found = []
    for k, (item, refs) in enumerate(usable):
        rng = random.Random(int(text_hash(f"{seed}:{item.id}")[:12], 16))
        others = [r for _, r in usable[k + 1 :] + usable[:k] if len(r) == len(refs) and r != refs]
        copies = {
            "other": others[0] if others else None,
            "shuffled": tuple(shuffled(r, rng) for r in refs),
            "first_sentence": tuple(first_sentence(r) for r in refs),
        }
        for kind, copy in copies.items():
            if copy is not None and copy != refs and all(c.strip() for c in copy):
                found.append((item, refs, kind, copy))
    return found


def binomial_tail(successes: int, n: int) -> float:
    """P(X >= successes) for X ~ Binomial(n, 1/2), exactly."""
    return float(Fraction(sum(math.comb(n, i) for i in range(successes, n + 1)), 2**n)) if n else 1.0


@dataclass
class Check:
    task: str
    judge: str
    alpha: float
    comparisons: dict  # degradation -> [comparisons, preferring the reference]
    order_pairs: int = 0  # pairwise: comparisons with both orders read
    order_disagreements: int = 0
    errors: int = 0  # comparisons lost to judge errors

    @property
    def n(self) -> int:
        return sum(c[0] for c in self.comparisons.values())

    @property
    def preferred(self) -> int:
        return sum(c[1] for c in self.comparisons.values())

    @property
    def p_value(self) -> float:
        return binomial_tail(self.preferred, self.n)

    @property
    def fit(self) -> bool:
        return self.n > 0 and self.p_value < self.alpha

    def rates(self) -> str:
        return ", ".join(
            f"{DEGRADATIONS[kind]} {found / n:.0%} of {n}" for kind, (n, found) in self.comparisons.items() if n
        )

    def record(self) -> dict:
        return {
            "task": self.task,
            "judge": self.judge,
            "comparisons": self.n,
            "preferred": self.preferred,
            "preference_rate": self.preferred / self.n if self.n else None,
            "by_degradation": {
                kind: {"comparisons": n, "preferred": found, "preference_rate": found / n if n else None}
                for kind, (n, found) in self.comparisons.items()
            },
            "order_pairs": self.order_pairs,
            "position_disagreement_rate": self.order_disagreements / self.order_pairs if self.order_pairs else None,
            "judge_errors": self.errors,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "fit": self.fit,
        }

    def message(self) -> str:
        """Why the task's cases are inconclusive (for an unfit judge), with what to do."""
        rate = f"{self.preferred} of {self.n} comparisons" + (
            f" ({self.preferred / self.n:.0%}: {self.rates()})" if self.n else " (no item has a reference answer)"
        )
        return (
            f"{self.task}: inconclusive: the judge {self.judge} prefers the reference answer over a degraded copy "
            f"in {rate}, binomial p = {self.p_value:.3g}, not below alpha = {self.alpha:g}: it cannot tell good "
            f"answers from bad on this task, so no verdict of it can be trusted; use a larger judge (e.g. "
            f"--kick-judge local:qwen2.5-coder-1.5b) or a served one (--kick-judge openai:<model>)"
        )


def run(judge, family, items: Sequence, task: str, judge_name: str, alpha: float = ALPHA, seed: int = 0) -> Check:
    """The check of ``judge`` (a runner.Judge or a judge reading probabilities) with the task's protocol ``family``
    on ``items``: every ask in one batch, identical asks once."""
    copies = degraded_copies(items, seed)
    plans = []  # per comparison: (kind, reference asks or None, degraded asks)
    for item, refs, kind, copy in copies:
        if family.pairwise:
            plans.append((kind, None, family.asks(item, list(copy))))
        else:
            plans.append((kind, family.asks(item, list(refs)), family.asks(item, list(copy))))
    unique: dict = {}
    for _, ref_asks, deg_asks in plans:
        for ask in (ref_asks or []) + deg_asks:
            unique.setdefault(ask, None)
    for ask, outcome in zip(unique, judge.run(list(unique))):
        unique[ask] = outcome
    check = Check(task, judge_name, alpha, {kind: [0, 0] for kind in DEGRADATIONS})
    for kind, ref_asks, deg_asks in plans:
        outcomes = [unique[a] for a in (ref_asks or []) + deg_asks]
        if any(o.reading is None for o in outcomes):
            check.errors += 1
            continue
        if ref_asks is None:  # pairwise: the copy stands where the model's answer stands, in both orders
            margins = [o.reading.reference - o.reading.model for o in outcomes]
            check.order_pairs += 1
            check.order_disagreements += len({(m > 0) - (m < 0) for m in margins}) > 1
        else:
            ref = [unique[a].reading.model for a in ref_asks]
            deg = [unique[a].reading.model for a in deg_asks]
            margins = [sum(ref) / len(ref) - sum(deg) / len(deg)]
        check.comparisons[kind][0] += 1
        check.comparisons[kind][1] += sum(margins) / len(margins) > 0
    return check


def require(runtime, case, node) -> None:
    """The fixtures' hook, before a case's dense baseline is used: the check's figures recorded on every case of a
    judged task (``discrimination``); a judge no better than chance makes the case inconclusive (a skip)."""
    check = runtime.judge_check(case.task)
    if check is None:
        return
    put(node, discrimination=check.record())
    lost = check.errors / (check.n + check.errors) if check.errors else 0.0
    if lost > MAX_ERROR_SHARE:  # a failing judge is a judge error, not a judge that cannot discriminate
        put(node, verdict=Verdict.JUDGE_ERROR)
        raise JudgeErrorsExceeded(
            f"{case.task}: the judge failed on {check.errors} of {check.n + check.errors} comparisons of its "
            f"discrimination check ({lost:.0%}, more than {MAX_ERROR_SHARE:.0%}): no verdict"
            + (f"; e.g. {runtime.judge_reason()}" if runtime.judge_reason() else "")
        )
    if not check.fit:
        put(node, verdict=Verdict.INCONCLUSIVE)
        pytest.skip(check.message())
