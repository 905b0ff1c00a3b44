"""The three common task shapes, ready to instantiate: multiple choice by log-likelihood, generation scored by
a metric, perplexity over a text file. Declarative task files (``--kick-task-file``) build these; a Python
user builds them directly (``pytest_kick.api``). Items come from a JSONL or CSV file, one record per item."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from pytest_kick.tasks.base import Dataset, Example, OneRequestPerItem, Settings
from pytest_kick.tasks.data import split_shots, subset
from pytest_kick.tasks.normalize import contains_answer, normalize
from pytest_kick.tasks.perplexity import nll_scores
from pytest_kick.tasks.records import read_records

FIELD = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class ChoiceItem:
    """A multiple-choice item: flip reports show the question, the choices and the correct one apart."""

    id: str
    question: str
    answers: tuple[str, ...]  # (the correct choice,)
    choices: tuple[str, ...]
    label: int  # index of the correct choice
    fields: tuple[tuple[str, str], ...] = ()  # the record's text fields, for the prompt template


@dataclass(frozen=True)
class TextItem:
    id: str
    question: str
    answers: tuple[str, ...]
    fields: tuple[tuple[str, str], ...] = ()


def _fields(record: dict) -> tuple[tuple[str, str], ...]:
    return tuple((k, v if isinstance(v, str) else str(v)) for k, v in record.items())


class _FileTask:
    """What the shapes share: a data file, a prompt template over its fields, a few-shot count, an id field."""

    def __init__(self, name: str, data, template: str, shots: int = 0, id_field: str | None = None,
                 version: str = "1", where: str | None = None):
        self.name, self.family = name, name.split(":")[0]
        self.data, self.template, self.shots = Path(data), template, shots
        self.id_field, self.version = id_field, version
        self.where = where or f"task {name}"
        if not isinstance(shots, int) or shots < 0:
            raise KickError(f"{self.where}: shots must be a whole number >= 0 (got {shots!r})")

    def _records(self) -> list[tuple[int, dict]]:
        return read_records(self.data)

    def _id(self, line: int, record: dict, index: int) -> str:
        if self.id_field is None:
            return f"{self.name}-{index}"
        if self.id_field not in record:
            raise KickError(f"{self.data}:{line}: record lacks the id field {self.id_field!r}")
        return str(record[self.id_field])

    def _check_template(self, line: int, record: dict, extra: Sequence[str] = ()) -> None:
        missing = [f for f in FIELD.findall(self.template) if f not in record and f not in extra]
        if missing:
            raise KickError(f"{self.data}:{line}: record lacks {', '.join(missing)} (used by the template)")

    def prompt(self, item) -> str:
        return FIELD.sub(lambda m: dict(item.fields).get(m.group(1), m.group(0)), self.template)

    def load(self, settings: Settings) -> Dataset:
        records = self._records()
        items = tuple(self.item(line, record, k) for k, (line, record) in enumerate(records))
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise KickError(f"{self.data}: item ids are not unique (field {self.id_field!r})")
        return Dataset(items, f"file:{self.data}", file_hash(self.data))

    def split(self, dataset: Dataset, settings: Settings):
        return split_shots(dataset.examples, dataclasses.replace(settings, shots=self.shots), self.name, str(self.data))

    def _shot_block(self, shots: Sequence) -> str:
        return "".join(f"{self.prompt(s)} {s.answers[0]}\n\n" for s in shots)

    def template_hash(self, settings: Settings) -> str:
        return text_hash(type(self).__name__, self.template, f"shots:{self.shots}", *self._hash_parts())

    def _hash_parts(self) -> tuple[str, ...]:
        return ()


class MultipleChoice(_FileTask):
    """Multiple choice scored by log-likelihood: the item is right when its correct choice is the most likely
    continuation of the prompt (" " + choice). Any number of choices per item; chance is 1/len(choices) per
    item, and ``floor`` their mean over the evaluated items.

    ``choices``: the field holding a list of choices (JSONL), or a list of fields, one choice each (CSV
    columns; empty ones are left out). ``answer``: the field holding the correct choice, as its text, its
    0-based index, or a letter (A, B, ...).
    """

    metric = "accuracy"
    higher_is_better = True

    def __init__(self, name: str, data, template: str = "{question}\nAnswer:", choices="choices",
                 answer: str = "answer", **options):
        super().__init__(name, data, template, **options)
        self.choices, self.answer = choices, answer
        self.floor: float | None = None

    def item(self, line: int, record: dict, index: int) -> ChoiceItem:
        self._check_template(line, record)
        if isinstance(self.choices, str):
            if self.choices not in record:
                raise KickError(f"{self.data}:{line}: record lacks the choices field {self.choices!r}")
            choices = record[self.choices]
            if not isinstance(choices, list):
                raise KickError(f"{self.data}:{line}: {self.choices!r} must be a list of choices")
        else:
            absent = [c for c in self.choices if c not in record]
            if absent:
                raise KickError(f"{self.data}:{line}: record lacks the choice field(s) {', '.join(absent)}")
            choices = [record[c] for c in self.choices if str(record[c]).strip()]
        choices = [str(c) for c in choices]
        if len(choices) < 2:
            raise KickError(f"{self.data}:{line}: an item needs at least 2 choices (got {len(choices)})")
        if self.answer not in record:
            raise KickError(f"{self.data}:{line}: record lacks the answer field {self.answer!r}")
        label = self._label(line, record[self.answer], choices)
        return ChoiceItem(self._id(line, record, index), self.prompt_of(record), (choices[label],),
                          tuple(choices), label, _fields(record))

    def prompt_of(self, record: dict) -> str:
        return FIELD.sub(lambda m: str(record[m.group(1)]), self.template)

    def _label(self, line: int, value, choices: list[str]) -> int:
        text = str(value).strip()
        if isinstance(value, int) or text.isdigit():
            index = int(text)
        elif len(text) == 1 and text.isalpha() and text not in choices:
            index = ord(text.upper()) - ord("A")
        elif text in choices:
            index = choices.index(text)
        else:
            raise KickError(f"{self.data}:{line}: answer {value!r} is none of the choices, an index or a letter")
        if not 0 <= index < len(choices):
            raise KickError(f"{self.data}:{line}: answer {value!r} is out of range for {len(choices)} choices")
        return index

    def chance(self, item: ChoiceItem) -> float:
        """The score of a guess on this item."""
        return 1 / len(item.choices)

    def split(self, dataset: Dataset, settings: Settings):
        shots, items = super().split(dataset, settings)
        self.floor = sum(self.chance(i) for i in items) / len(items)
        return shots, items

    def evaluate(self, items: Sequence[ChoiceItem], shots, settings: Settings, run):
        """One log-likelihood request per choice, all in one batch; the item scores 1 when its correct choice
        is the most likely (the first best on ties); the output is the chosen choice."""
        block = self._shot_block(shots)
        requests = [LoglikelihoodRequest(block + i.question, " " + c) for i in items for c in i.choices]
        answers, scores, outputs, at = run(requests), [], [], 0
        for item in items:
            lls = [ll for ll, _ in answers[at:at + len(item.choices)]]
            at += len(item.choices)
            best = max(range(len(lls)), key=lambda c: lls[c])
            scores.append(1.0 if best == item.label else 0.0)
            outputs.append(item.choices[best])
        return scores, outputs

    def _hash_parts(self):
        return (f"choices:{self.choices}", f"answer:{self.answer}", "loglikelihood-sum")


METRICS = ("exact", "contains", "rougeL")


class Generation(OneRequestPerItem, _FileTask):
    """Greedy generation, scored against the item's answers: ``exact`` (normalised equality with any answer),
    ``contains`` (an answer occurs in the output, whole words), ``rougeL`` (best ROUGE-L F1 over answers)."""

    higher_is_better = True
    floor = 0.0

    def __init__(self, name: str, data, template: str = "{question}\nAnswer:", answer: str = "answer",
                 metric: str = "contains", max_new_tokens: int = 32, stop: Sequence[str] = ("\n",), **options):
        super().__init__(name, data, template, **options)
        if metric not in METRICS:
            raise KickError(f"{self.where}: metric {metric!r} is not one of {', '.join(METRICS)}")
        self.answer, self.metric, self.max_new_tokens, self.stop = answer, metric, max_new_tokens, tuple(stop)

    def item(self, line: int, record: dict, index: int) -> TextItem:
        self._check_template(line, record)
        if self.answer not in record:
            raise KickError(f"{self.data}:{line}: record lacks the answer field {self.answer!r}")
        value = record[self.answer]
        answers = tuple(str(a) for a in (value if isinstance(value, list) else [value]))
        if not answers or not all(a.strip() for a in answers):
            raise KickError(f"{self.data}:{line}: the answer field {self.answer!r} is empty")
        prompt = FIELD.sub(lambda m: str(record[m.group(1)]), self.template)
        return TextItem(self._id(line, record, index), prompt, answers, _fields(record))

    def requests(self, items, shots, settings):
        block = self._shot_block(shots)
        return [GenerationRequest(block + i.question, self.max_new_tokens, self.stop) for i in items]

    def score(self, item, request, answer, settings) -> float:
        if self.metric == "exact":
            return float(any(normalize(answer) == normalize(a) for a in item.answers))
        if self.metric == "contains":
            return float(contains_answer(answer, item.answers))
        from pytest_kick.tasks.scorers import rouge

        return max(rouge(a, answer)["rougeL"] for a in item.answers)

    def _hash_parts(self):
        return (f"metric:{self.metric}", f"max_new_tokens:{self.max_new_tokens}", f"stop:{self.stop}")


class TextPerplexity:
    """Perplexity over a plain text file: each paragraph (blank-line separated) an item, every token scored
    (rolling log-likelihood, windows of ``window`` tokens). Lower is better; no chance level."""

    metric = "perplexity"
    higher_is_better = False
    floor = None

    def __init__(self, name: str, data, window: int = 1024, version: str = "1", where: str | None = None):
        self.name, self.family, self.data, self.window, self.version = name, name.split(":")[0], Path(data), window, version
        self.where = where or f"task {name}"

    def load(self, settings: Settings) -> Dataset:
        if not self.data.is_file():
            raise KickError(f"{self.where}: no such text file {self.data}")
        parts = [p.strip() for p in re.split(r"\n\s*\n", self.data.read_text(encoding="utf-8")) if p.strip()]
        if not parts:
            raise KickError(f"{self.data}: the text file is empty")
        items = tuple(Example(f"{self.name}-{k}", p, ()) for k, p in enumerate(parts))
        return Dataset(items, f"file:{self.data}", file_hash(self.data))

    def split(self, dataset: Dataset, settings: Settings):
        return [], subset(list(dataset.examples), settings.limit, settings.seed, self.name)

    def template_hash(self, settings: Settings) -> str:
        return text_hash("text-perplexity", "paragraphs", f"window:{self.window}")

    def figure(self, mean: float) -> float:
        return math.exp(mean)

    def evaluate(self, items, shots, settings: Settings, run):
        return nll_scores(self.name, items, run([RollingRequest(i.question, "", self.window) for i in items]))
