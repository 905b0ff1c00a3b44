"""Multiple choice by log-likelihood from a data file: any number of choices per item, optionally lettered.

The choices of an item come from one list field, or from several fields in order, each a string (one choice) or
a list (each of its elements): TruthfulQA's records give MC1 as ``choices: [best_answer, incorrect_answers]``,
``answer: best_answer``. A value that is not text where text is needed (a list as the answer or in a template)
is an error naming the data file, its line and the key; nothing is written out as a Python repr.

With ``labels`` (e.g. ``"ABCD"``) the choices are listed in the prompt, one per line, as ``A. text`` (the
``{choices}`` field of the template), and the model is scored on the label (" A", " B", ...), as Hendrycks'
MMLU evaluation does; without labels it is scored on each choice's own text (" " + choice). A template may use
``{choices}`` either way (unlabelled: one choice per line). ``shuffle`` reorders each item's choices, seeded by
the task name and the item id (the same order in every run), so a correct choice always listed first does not
let the model's preference for a position decide the score.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.requests import LoglikelihoodRequest
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.file_task import ChoiceItem, _FileTask, _kind, _text
from pytest_kick.tasks.prompts import answer_tokens, render

CHOICE_USE = "choices: each choice must be text (a string or a number)"


class MultipleChoice(_FileTask):
    """Multiple choice scored by log-likelihood: the item is right when its correct choice (or its label) is the
    most likely continuation of the prompt. Any number of choices per item; chance is 1/len(choices) per item (what
    the gate tests dense against, tasks.base.chance_levels), and ``floor`` their mean over the data file's items,
    found once when the task is built (which reads the data file then): a value of the task, never of a run (a
    run's mean over its evaluated items is in the session summary, tasks.base.choices_summary).

    ``choices``: the field holding a list of choices (JSONL, Parquet), or a list of fields, flattened in order: a
    string field is one choice, a list field each of its elements (empty ones are left out, as empty CSV columns
    are). ``answer``: the field holding the correct choice, as its label, its text, its 0-based index, or a letter
    (A, B, ...); when it is one of the string fields listed in ``choices``, the correct choice is that field's.
    ``labels``: a string of one-character labels or a list of labels. ``shuffle``: reorder each item's choices
    (seeded by task name and item id; the label follows its choice). The output of an item is the chosen label,
    or the chosen choice's text without labels.
    """

    metric = "accuracy"
    score_range = (0.0, 1.0)  # every item scores within it (the sequential gate bets on that)
    higher_is_better = True

    def __init__(
        self,
        name: str,
        data,
        template: str = "{question}\nAnswer:",
        choices="choices",
        answer: str = "answer",
        labels: Sequence[str] | str = (),
        shuffle: bool = False,
        **options,
    ):
        super().__init__(name, data, template, **options)
        self.choices, self.answer, self.labels, self.shuffle = choices, answer, tuple(labels), bool(shuffle)
        if len(set(self.labels)) != len(self.labels) or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise KickError(f"{self.where}: labels must be distinct, non-empty strings (got {list(self.labels)})")
        items = self._items(self.data)
        self.floor: float = sum(self.chance(i) for i in items) / len(items)

    def item(self, line: int, record: dict, index: int, path: Path) -> ChoiceItem:
        fields = self._template_fields(line, record, path, extra=("choices",))
        choices, own = self._choices(line, record, path)
        if len(choices) < 2:
            raise KickError(f"{path}:{line}: an item needs at least 2 choices (got {len(choices)})")
        if self.labels and len(choices) > len(self.labels):
            raise KickError(f"{path}:{line}: {len(choices)} choices but only {len(self.labels)} labels")
        if self.answer not in record:
            raise KickError(f"{path}:{line}: record lacks the answer field {self.answer!r}")
        if self.answer in own:  # the answer is one of the choice fields: that field's choice, wherever its text recurs
            label = own[self.answer]
        else:
            _text(
                record[self.answer],
                path,
                line,
                self.answer,
                "answer: names the field of the correct choice (its text, label, 0-based index or letter)",
            )
            label = self._label(line, record[self.answer], choices, path)
        item_id = self._id(line, record, index, path)
        if self.shuffle:
            order = self.order(item_id, len(choices))
            choices, label = [choices[k] for k in order], order.index(label)
        labels = self.labels[: len(choices)]
        listed = "\n".join(f"{x}. {c}" for x, c in zip(labels, choices)) if labels else "\n".join(choices)
        question = render(self.template, {**dict(fields), "choices": listed})
        return ChoiceItem(item_id, question, (choices[label],), tuple(choices), label, fields, labels)

    def order(self, item_id: str, n: int) -> list[int]:
        """The shuffled order of an item's ``n`` choices (original positions): seeded by the task name and the
        item id, the same in every run and process."""
        order = list(range(n))
        random.Random(f"{self.name}/{item_id}").shuffle(order)
        return order

    def _choices(self, line: int, record: dict, path: Path) -> tuple[list[str], dict[str, int]]:
        """The item's choices, and the position of each string field's own choice (list-of-fields form)."""

        def listed(key):
            value = record[key]
            return value.tolist() if hasattr(value, "tolist") else value  # a Parquet list column read by datasets

        if isinstance(self.choices, str):
            if self.choices not in record:
                raise KickError(f"{path}:{line}: record lacks the choices field {self.choices!r}")
            value = listed(self.choices)
            if not isinstance(value, (list, tuple)):
                raise KickError(
                    f"{path}:{line}: field {self.choices!r} is {_kind(value)}; choices: names a field "
                    f"holding a list of choices, or lists the fields of the choices, e.g. [{self.choices}]"
                )
            return [_text(c, path, line, f"{self.choices}[{n}]", CHOICE_USE) for n, c in enumerate(value)], {}
        absent = [c for c in self.choices if c not in record]
        if absent:
            raise KickError(f"{path}:{line}: record lacks the choice field(s) {', '.join(absent)}")
        choices, own = [], {}
        for key in self.choices:
            value = listed(key)
            if isinstance(value, (list, tuple)):
                texts = [_text(c, path, line, f"{key}[{n}]", CHOICE_USE) for n, c in enumerate(value)]
            elif value is None:  # a CSV row shorter than its header
                texts = []
            else:
                texts = [_text(value, path, line, key, CHOICE_USE)]
                if texts[0].strip():
                    own.setdefault(key, len(choices))
            choices += [t for t in texts if t.strip()]
        return choices, own

    def _label(self, line: int, value, choices: list[str], path: Path) -> int:
        text = str(value).strip()
        if text in self.labels[: len(choices)]:
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

    def evaluate(self, items: Sequence[ChoiceItem], shots, settings: Settings, run):
        """One log-likelihood request per choice, all in one batch; the item scores 1 when its correct choice
        is the most likely (the first best on ties); the output is the chosen label or choice."""
        continuations = [self.continuations(i) for i in items]
        bare = self.contexts(items, [], run, None)  # header and question: what the answer's tokens follow
        prompts = self.contexts(items, shots, run, answer_tokens(run, bare, continuations))
        requests = [LoglikelihoodRequest(p, c) for p, cs in zip(prompts, continuations) for c in cs]
        answers, scores, outputs, at = run(requests), [], [], 0
        for item in items:
            lls = [ll for ll, _ in answers[at : at + len(item.choices)]]
            at += len(item.choices)
            best = max(range(len(lls)), key=lambda c: lls[c])
            scores.append(1.0 if best == item.label else 0.0)
            outputs.append((item.labels or item.choices)[best])
        return scores, outputs

    def _hash_parts(self):
        shuffle = ("shuffle:name/id",) if self.shuffle else ()  # unshuffled tasks keep the hash they had
        return (
            f"choices:{self.choices}",
            f"answer:{self.answer}",
            f"labels:{self.labels}",
            "loglikelihood-sum",
            *shuffle,
        )
