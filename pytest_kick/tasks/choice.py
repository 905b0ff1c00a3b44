"""Multiple choice by log-likelihood from a data file: any number of choices per item, optionally lettered.

With ``labels`` (e.g. ``"ABCD"``) the choices are listed in the prompt, one per line, as ``A. text`` (the
``{choices}`` field of the template), and the model is scored on the label (" A", " B", ...), as Hendrycks'
MMLU evaluation does; without labels it is scored on each choice's own text (" " + choice). A template may use
``{choices}`` either way (unlabelled: one choice per line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.requests import LoglikelihoodRequest
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.prompts import answer_tokens, render
from pytest_kick.tasks.simple import ChoiceItem, _FileTask, _fields


class MultipleChoice(_FileTask):
    """Multiple choice scored by log-likelihood: the item is right when its correct choice (or its label) is the
    most likely continuation of the prompt. Any number of choices per item; chance is 1/len(choices) per item, and
    ``floor`` their mean over the evaluated items.

    ``choices``: the field holding a list of choices (JSONL, Parquet), or a list of fields, one choice each (CSV
    columns; empty ones are left out). ``answer``: the field holding the correct choice, as its label, its text,
    its 0-based index, or a letter (A, B, ...). ``labels``: a string of one-character labels or a list of labels.
    The output of an item is the chosen label, or the chosen choice's text without labels.
    """

    metric = "accuracy"
    higher_is_better = True

    def __init__(self, name: str, data, template: str = "{question}\nAnswer:", choices="choices",
                 answer: str = "answer", labels: Sequence[str] | str = (), **options):
        super().__init__(name, data, template, **options)
        self.choices, self.answer, self.labels = choices, answer, tuple(labels)
        if len(set(self.labels)) != len(self.labels) or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise KickError(f"{self.where}: labels must be distinct, non-empty strings (got {list(self.labels)})")
        self.floor: float | None = None

    def item(self, line: int, record: dict, index: int, path: Path) -> ChoiceItem:
        self._check_template(line, record, path, extra=("choices",))
        if isinstance(self.choices, str):
            if self.choices not in record:
                raise KickError(f"{path}:{line}: record lacks the choices field {self.choices!r}")
            choices = record[self.choices]
            if hasattr(choices, "tolist"):  # a Parquet list column read by datasets
                choices = choices.tolist()
            if not isinstance(choices, list):
                raise KickError(f"{path}:{line}: {self.choices!r} must be a list of choices")
        else:
            absent = [c for c in self.choices if c not in record]
            if absent:
                raise KickError(f"{path}:{line}: record lacks the choice field(s) {', '.join(absent)}")
            choices = [record[c] for c in self.choices if str(record[c]).strip()]
        choices = [str(c) for c in choices]
        if len(choices) < 2:
            raise KickError(f"{path}:{line}: an item needs at least 2 choices (got {len(choices)})")
        if self.labels and len(choices) > len(self.labels):
            raise KickError(f"{path}:{line}: {len(choices)} choices but only {len(self.labels)} labels")
        if self.answer not in record:
            raise KickError(f"{path}:{line}: record lacks the answer field {self.answer!r}")
        label = self._label(line, record[self.answer], choices, path)
        labels = self.labels[:len(choices)]
        fields = _fields(record)
        listed = "\n".join(f"{x}. {c}" for x, c in zip(labels, choices)) if labels else "\n".join(choices)
        question = render(self.template, {**dict(fields), "choices": listed})
        return ChoiceItem(self._id(line, record, index, path), question, (choices[label],), tuple(choices), label,
                          fields, labels)

    def _label(self, line: int, value, choices: list[str], path: Path) -> int:
        text = str(value).strip()
        if text in self.labels[:len(choices)]:
            index = self.labels.index(text)
        elif isinstance(value, int) or text.isdigit():
            index = int(text)
        elif len(text) == 1 and text.isalpha() and text not in choices:
            index = ord(text.upper()) - ord("A")
        elif text in choices:
            index = choices.index(text)
        else:
            raise KickError(f"{path}:{line}: answer {value!r} is none of the choices, an index or a letter")
        if not 0 <= index < len(choices):
            raise KickError(f"{path}:{line}: answer {value!r} is out of range for {len(choices)} choices")
        return index

    def continuations(self, item: ChoiceItem) -> list[str]:
        """What the model is scored on after the prompt: " " + each label, or " " + each choice."""
        return [" " + c for c in (item.labels or item.choices)]

    def _shot_answer(self, shot: ChoiceItem) -> str:
        return (shot.labels or shot.choices)[shot.label]

    def chance(self, item: ChoiceItem) -> float:
        """The score of a guess on this item."""
        return 1 / len(item.choices)

    def split(self, dataset: Dataset, settings: Settings):
        shots, items = super().split(dataset, settings)
        self.floor = sum(self.chance(i) for i in items) / len(items)
        return shots, items

    def evaluate(self, items: Sequence[ChoiceItem], shots, settings: Settings, run):
        """One log-likelihood request per choice, all in one batch; the item scores 1 when its correct choice
        is the most likely (the first best on ties); the output is the chosen label or choice."""
        continuations = [self.continuations(i) for i in items]
        bare = self.contexts(items, [], run, None)  # header and question: what the answer's tokens follow
        prompts = self.contexts(items, shots, run, answer_tokens(run, bare, continuations))
        requests = [LoglikelihoodRequest(p, c) for p, cs in zip(prompts, continuations) for c in cs]
        answers, scores, outputs, at = run(requests), [], [], 0
        for item in items:
            lls = [ll for ll, _ in answers[at:at + len(item.choices)]]
            at += len(item.choices)
            best = max(range(len(lls)), key=lambda c: lls[c])
            scores.append(1.0 if best == item.label else 0.0)
            outputs.append((item.labels or item.choices)[best])
        return scores, outputs

    def _hash_parts(self):
        return (f"choices:{self.choices}", f"answer:{self.answer}", f"labels:{self.labels}", "loglikelihood-sum")
