"""MMLU data: the item type, the category of each subject, and reading the hub's rows, Hendrycks' CSV files and
the bundled JSON Lines; the stratified ``--kick-limit`` subset. No torch, no prompts (tasks/mmlu_prompt.py)."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.tasks.base import Dataset
from pytest_kick.tasks.data import read_jsonl

LETTERS = ("A", "B", "C", "D")
HENDRYCKS_TAR = "https://people.eecs.berkeley.edu/~hendrycks/data.tar"

# The standard category of each subject (hendrycks/test categories.py: subject -> subcategory -> category).
_CATEGORY_SUBJECTS = {
    "STEM": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
        "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
        "high_school_mathematics high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
        "prehistory professional_law world_religions"
    ),
    "social sciences": (
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy"
    ),
    "other": (
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management "
        "marketing medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology"
    ),
}
SUBJECT_CATEGORY = {s: cat for cat, subjects in _CATEGORY_SUBJECTS.items() for s in subjects.split()}
CATEGORIES = tuple(_CATEGORY_SUBJECTS)


@dataclass(frozen=True)
class MMLUItem:
    id: str
    question: str
    answers: tuple[str, ...]  # (gold letter,)
    subject: str
    choices: tuple[str, str, str, str]
    answer_index: int


@dataclass(frozen=True)
class MMLUDataset(Dataset):
    """The test questions (``examples``) and the dev split the shots come from."""

    dev: tuple[MMLUItem, ...] = ()


def by_subject(items: Sequence[MMLUItem]) -> dict[str, tuple[MMLUItem, ...]]:
    """Items grouped by subject, each group in the given order (the shots of a subject: its dev questions)."""
    groups: dict[str, list[MMLUItem]] = {}
    for item in items:
        groups.setdefault(item.subject, []).append(item)
    return {s: tuple(v) for s, v in groups.items()}


def _item(item_id: str, subject: str, question, choices, index, where: str) -> MMLUItem:
    if not isinstance(question, str) or not isinstance(subject, str) or not subject:
        raise KickError(f"{where}: question and subject must be strings")
    if not isinstance(choices, (list, tuple)) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        raise KickError(f"{where}: choices must be a list of 4 strings, got {choices!r:.80}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 4:
        raise KickError(f"{where}: the answer must be a letter A-D or an index 0-3, got {index!r:.20}")
    return MMLUItem(item_id, question, (LETTERS[index],), subject, tuple(choices), index)


def _answer_index(value, where: str) -> int:
    if isinstance(value, str) and value.strip() in LETTERS:
        return LETTERS.index(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise KickError(f"{where}: the answer must be a letter A-D or an index 0-3, got {value!r:.20}")


def items_from_jsonl(path: Path) -> list[MMLUItem]:
    """Records with id, subject, question, choices and answer_index (or answer, a letter): SCHEMA.md's layout."""
    items = []
    for lineno, r in enumerate(read_jsonl(path, required=("id", "subject", "question", "choices")), 1):
        where = f"{path} record {r.get('id', lineno)!r}"
        index = _answer_index(r["answer_index"] if "answer_index" in r else r.get("answer"), where)
        items.append(_item(str(r["id"]), r["subject"], r["question"], r["choices"], index, where))
    return items


def items_from_csv(path: Path, subject: str, split: str) -> list[MMLUItem]:
    """One Hendrycks CSV: no header, rows question,A,B,C,D,letter (quoted fields may hold newlines)."""
    items = []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for row_number, row in enumerate(csv.reader(handle)):
                where = f"{path}:{row_number + 1}"
                if len(row) != 6:
                    raise KickError(
                        f"{where}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}; "
                        f"restore the file from {HENDRYCKS_TAR}"
                    )
                index = _answer_index(row[5], where)
                items.append(_item(f"mmlu/{split}/{subject}/{row_number}", subject, row[0], row[1:5], index, where))
    except (UnicodeDecodeError, csv.Error) as err:
        raise KickError(f"{path}: not a readable MMLU CSV file ({err}); restore it from {HENDRYCKS_TAR}") from None
    if not items:
        raise KickError(f"{path} holds no questions; restore it from {HENDRYCKS_TAR}")
    return items


def items_from_hub(rows: list[dict], split: str, where: str) -> list[MMLUItem]:
    items, seen = [], {}
    for row in rows:
        subject = row.get("subject")
        number = seen.get(subject, 0)
        seen[subject] = number + 1
        items.append(
            _item(
                f"mmlu/{split}/{subject}/{number}",
                subject,
                row.get("question"),
                row.get("choices"),
                _answer_index(row.get("answer"), where),
                f"{where} row {subject}/{number}",
            )
        )
    return items


def stratified_subset(items: Sequence[MMLUItem], limit: int | None, seed: int, salt: str) -> list[MMLUItem]:
    """``limit`` items, stratified by subject, in dataset order; all items when limit is None or too large.

    Allocation: with ``limit >= number of subjects``, every subject gets one item and the remaining
    ``limit - subjects`` are shared in proportion to each subject's other items; with fewer, ``limit`` is
    shared in proportion to subject sizes (some subjects get none). Shares are rounded by largest remainder,
    ties broken by a seeded order. Within a subject, the items are a seeded sample. Everything derives from
    ``seed`` and ``salt``: the same arguments give the same subset.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.subject, []).append(index)
    subjects = list(groups)
    order_rng = random.Random(f"{seed}/{salt}/allocation")
    tiebreak = {s: order_rng.random() for s in subjects}
    if limit >= len(subjects):
        base, weights, rest = 1, {s: len(groups[s]) - 1 for s in subjects}, limit - len(subjects)
    else:
        base, weights, rest = 0, {s: len(groups[s]) for s in subjects}, limit
    total = sum(weights.values())
    share = {s: base + (rest * weights[s] // total if total else 0) for s in subjects}
    left = limit - sum(share.values())
    by_remainder = sorted(subjects, key=lambda s: (-(rest * weights[s] % total if total else 0), tiebreak[s]))
    for s in by_remainder[:left]:
        share[s] += 1
    chosen = []
    for s in subjects:
        chosen += random.Random(f"{seed}/{salt}/{s}").sample(groups[s], share[s])
    return [items[i] for i in sorted(chosen)]
