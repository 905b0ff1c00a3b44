"""The case record: what one kick item found. The fixtures fill it; every reporter (the terminal table and
summary lines, JSON, Markdown, plots, the session summary) reads its attributes; JUnit shows its fields as
``kick_<field>`` properties.

Fields travel as the item's ``kick_<field>`` user properties (so they cross xdist workers and reach
``--junitxml``); ``put`` writes them, refusing a name that is not a field, and ``CaseRecord.from_properties``
reads them back. ``Verdict`` is every status a case can end in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Verdict(str, Enum):
    """A case's status. Compressed cases: matching, not matching, inconclusive (dense at chance),
    undecided (the sequential gate's budget ran out). The dense case:
    sane (it can show a loss), broken (empty output), inconclusive. Either: judge-error (too many items without a
    judgment for any verdict)."""

    MATCHING = "matching"
    NOT_MATCHING = "not matching"
    INCONCLUSIVE = "inconclusive"
    UNDECIDED = "undecided"  # --kick-stat sequential: the item budget ran out before either decision
    SANE = "sane"
    BROKEN = "broken"
    JUDGE_ERROR = "judge-error"

    def __str__(self) -> str:
        return self.value


PREFIX = "kick_"


@dataclass
class CaseRecord:
    """One case (a suite item, or a --kick-search item). Nested figures stay plain dicts: ``details`` (the task's
    extra figures), ``compression`` (CompressionReport.as_record), ``recovery`` (recover/outcome.py), ``search``
    (search_run.result_record), ``judge`` (what the judge spent), ``judge_errors`` (judge/errors.Screen) and
    ``discrimination`` (judge/discrimination.Check.record)."""

    task: str
    model: str
    compressor: str  # "dense" for the dense case
    ratio: str | None = None
    recover: str | None = None  # the recovery method of a recovered case
    outcome: str | None = None  # pytest's: passed, failed, skipped
    nodeid: str | None = None
    verdict: Verdict | None = None
    metric: str | None = None
    higher_is_better: bool | None = None
    n: int | None = None
    dense: float | None = None
    compressed: float | None = None
    drop: float | None = None  # relative, sign flipped for lower-is-better metrics
    threshold: float | None = None
    drop_low: float | None = None  # the drop's two-sided 95 % interval
    drop_high: float | None = None
    drop_lower_bound: float | None = None  # one-sided 95 % lower bound
    p_value: float | None = None  # exact McNemar
    stat: str | None = None
    items_used: int | None = None  # items the compressed model was evaluated on (sequential: may stop early)
    budget: int | None = None  # the item budget (--kick-limit, or all)
    bound_low: float | None = None  # sequential: the drop's bounds at the stop, at the case's alpha
    bound_high: float | None = None
    alpha: float | None = None  # sequential: the error rate of this case's decisions
    family: str | None = None  # sequential: "case" or "session" (alpha split over the session's cases)
    smallest_drop: float | None = None  # undecided: the smallest drop the budget could have shown
    tolerance: str | None = None
    lost: int | None = None
    kept: int | None = None
    gained: int | None = None
    chance: float | None = None  # mean chance level of the items (None: the task has none)
    choices: str | None = None  # "3-5 choices per item, chance 0.267" for multiple choice
    saved: bool | None = None  # skipped by dense first: never compressed or evaluated
    baseline: str | None = None  # computed, cached, written, regenerated, file
    baseline_path: str | None = None
    protocol: str | None = None
    data_source: str | None = None
    sparsity: float | None = None
    details: dict | None = None
    details_dense: dict | None = None
    compression: dict | None = None
    recovery: dict | None = None
    search: dict | None = None
    judge: dict | None = None
    judge_errors: dict | None = None
    discrimination: dict | None = None  # a judged task: the judge's discrimination check (judge/discrimination.py)
    drafting: dict | None = None  # dense-drafted decoding (engines/draft.py Tally.record): acceptance, near-ties

    def __post_init__(self):
        if self.verdict is not None and not isinstance(self.verdict, Verdict):
            self.verdict = Verdict(self.verdict)

    @classmethod
    def from_properties(cls, properties) -> CaseRecord | None:
        """The record of an item's ``kick_*`` user properties (None for an item that is not a kick case)."""
        names = FIELDS
        values = {
            key[len(PREFIX) :]: value
            for key, value in properties
            if isinstance(key, str) and key.startswith(PREFIX) and key[len(PREFIX) :] in names
        }
        if "task" not in values:
            return None
        values.setdefault("model", "")
        values.setdefault("compressor", "dense")
        return cls(**values)

    @property
    def is_dense(self) -> bool:
        return self.compressor == "dense"

    @property
    def is_search(self) -> bool:
        """A --kick-search item: a compressor but no single ratio."""
        return not self.is_dense and self.ratio is None

    @property
    def row(self) -> str:
        """``magnitude``, or ``magnitude+lora`` for a recovered case: one table row per recovery method."""
        return self.compressor + (f"+{self.recover}" if self.recover else "")

    @property
    def label(self) -> str:
        """``dense``, or ``magnitude@0.5`` (``+lora`` for a recovered case)."""
        return "dense" if self.is_dense else f"{self.row}@{self.ratio}"

    def as_dict(self) -> dict[str, Any]:
        """Every field, for the JSON report (the verdict as its text)."""
        found = dataclasses.asdict(self)
        found["verdict"] = None if self.verdict is None else self.verdict.value
        return found


FIELDS = frozenset(f.name for f in dataclasses.fields(CaseRecord))


def put(node, **values) -> None:
    """Record fields of ``node``'s case (a pytest item); a name that is not a CaseRecord field is a bug."""
    for name, value in values.items():
        if name not in FIELDS:
            raise AttributeError(f"CaseRecord has no field {name!r}")
        node.user_properties.append((PREFIX + name, value.value if isinstance(value, Verdict) else value))


def has(properties, name: str, value) -> bool:
    """Whether an item's user properties record ``name`` = ``value`` (before the record is built)."""
    value = value.value if isinstance(value, Verdict) else value
    return any(tuple(p) == (PREFIX + name, value) for p in properties)
