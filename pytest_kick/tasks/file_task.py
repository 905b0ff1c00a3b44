"""The file-backed base of the task shapes (``_FileTask``: a data file, a prompt template over its fields, few-shot
rules, an id field), their item types and the helpers that turn a record's fields into text. tasks/simple.py
(generation, perplexity over a text file) and tasks/choice.py (multiple choice) build on it; neither imports the
other."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import split_shots, subset
from pytest_kick.tasks.prompts import fields_of, fit_shots, render, template_problem
from pytest_kick.tasks.records import read_records


@dataclass(frozen=True)
class ChoiceItem:
    """A multiple-choice item: flip reports show the question, the choices and the correct one apart."""

    id: str
    question: str
    answers: tuple[str, ...]  # (the correct choice,)
    choices: tuple[str, ...]
    label: int  # index of the correct choice
    fields: tuple[tuple[str, str], ...] = ()  # the record's text fields, for the prompt template
    labels: tuple[str, ...] = ()  # the label shown before each choice ("A", "B", ...), or none


@dataclass(frozen=True)
class TextItem:
    id: str
    question: str
    answers: tuple[str, ...]
    fields: tuple[tuple[str, str], ...] = ()


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    names = {str: "a string", list: "a list", tuple: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")


def _text(value, path: Path, line: int, key: str, use: str) -> str:
    """A record's value where a template, an answer, a choice or an id needs text: a string, or a number written
    out; anything else (a list, a mapping, null, true/false) is an error naming the file, the line and the key."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise KickError(f"{path}:{line}: field {key!r} is {_kind(value)}; {use}")


def _fields(record: dict, path: Path, line: int, used: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """The record's fields as text for the templates: strings, and numbers written out. A field in ``used`` that
    is not text is an error (see _text); other non-text fields are left out, never written as their repr."""
    found = []
    for key, value in record.items():
        if key in used:
            found.append((key, _text(value, path, line, key, "a template field needs text (a string or a number)")))
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            found.append((key, str(value)))
    return tuple(found)


class _FileTask:
    """What the shapes share: a data file, a prompt template over its fields, few-shot rules, an id field.

    Shots: ``shots`` records drawn (seeded) from the data file itself, or, with ``shots_from``, the first
    ``shots`` records of that file in file order; with ``shots_by`` (a field, e.g. a subject) the first ones
    whose field equals the item's. ``header`` (a template over the item's fields) opens every prompt, before
    the shots. Each shot is its prompt, a space, its answer and a blank line. When a prompt and its answer do
    not fit the model's context, shots are dropped from the last one until they do."""

    def __init__(
        self,
        name: str,
        data,
        template: str,
        shots: int = 0,
        id_field: str | None = None,
        version: str = "1",
        where: str | None = None,
        header: str = "",
        shots_from=None,
        shots_by: str | None = None,
    ):
        self.name, self.family = name, name.split(":")[0]
        self.data, self.template, self.shots = Path(data), template, shots
        self.id_field, self.version, self.header = id_field, version, header
        self.shots_from = None if shots_from is None else Path(shots_from)
        self.shots_by = shots_by
        self.where = where or f"task {name}"
        if not isinstance(shots, int) or shots < 0:
            raise KickError(f"{self.where}: shots must be a whole number >= 0 (got {shots!r})")
        if shots_by is not None and self.shots_from is None:
            raise KickError(f"{self.where}: shots_by needs shots_from (the file the shots come from)")
        for text in (template, header):
            problem = template_problem(text)
            if problem:
                raise KickError(f"{self.where}: {problem}")

    def _id(self, line: int, record: dict, index: int, path: Path) -> str:
        if self.id_field is None:
            return f"{self.name}-{index}" if path == self.data else f"{self.name}-shot-{index}"
        if self.id_field not in record:
            raise KickError(f"{path}:{line}: record lacks the id field {self.id_field!r}")
        return _text(
            record[self.id_field],
            path,
            line,
            self.id_field,
            "id: names a field of unique item ids (strings or numbers)",
        )

    def _template_fields(self, line: int, record: dict, path: Path, extra: Sequence[str] = ()):
        """The record's text fields (_fields), once every field the templates and ``shots_by`` use, but those
        in ``extra`` (filled in by the task), is there and is text."""
        used = fields_of(self.template) + fields_of(self.header) + ([self.shots_by] if self.shots_by else [])
        used = [f for f in dict.fromkeys(used) if f not in extra]
        missing = [f for f in used if f not in record]
        if missing:
            raise KickError(f"{path}:{line}: record lacks {', '.join(missing)} (used by the template)")
        return _fields(record, path, line, used)

    def prompt(self, item) -> str:
        return render(self.template, dict(item.fields))

    def _items(self, path: Path) -> tuple:
        items = tuple(self.item(line, record, k, path) for k, (line, record) in enumerate(read_records(path)))
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise KickError(f"{path}: item ids are not unique (field {self.id_field!r})")
        return items

    def load(self, settings: Settings) -> Dataset:
        items = self._items(self.data)
        if self.shots_from is None:
            return Dataset(items, f"file:{self.data}", file_hash(self.data))
        return Dataset(
            items,
            f"file:{self.data}+file:{self.shots_from}",
            text_hash(file_hash(self.data), file_hash(self.shots_from)),
        )

    def split(self, dataset: Dataset, settings: Settings):
        if self.shots_from is None:
            return split_shots(
                dataset.examples, dataclasses.replace(settings, shots=self.shots), self.name, str(self.data)
            )
        items = subset(list(dataset.examples), settings.limit, settings.seed, self.name)
        pool = self._items(self.shots_from) if self.shots else ()
        if self.shots_by is None:
            if len(pool) < self.shots:
                raise KickError(f"{self.where}: shots: {self.shots} but {self.shots_from} holds {len(pool)} records")
            return list(pool[: self.shots]), items
        shots = []
        for group in dict.fromkeys(self._group(i) for i in items):
            have = [s for s in pool if self._group(s) == group][: self.shots]
            if len(have) < self.shots:
                raise KickError(
                    f"{self.where}: shots: {self.shots} but {self.shots_from} holds {len(have)} records "
                    f"with {self.shots_by} = {group!r}"
                )
            shots += have
        return shots, items

    def _group(self, item) -> str:
        return dict(item.fields).get(self.shots_by, "")

    def _shots_of(self, item, shots: Sequence) -> list:
        if self.shots_by is None:
            return list(shots)
        return [s for s in shots if self._group(s) == self._group(item)][: self.shots]

    def _shot_answer(self, shot) -> str:
        return shot.answers[0]

    def contexts(self, items: Sequence, shots: Sequence, run, answer_tokens: Sequence[int] | None) -> list[str]:
        """Each item's prompt: header, its shots, its question; shots dropped from the last one while the prompt
        and ``answer_tokens`` (per item; None: nothing is dropped) do not fit the model's context."""
        own = [self._shots_of(i, shots) for i in items]
        k_max = max((len(s) for s in own), default=0)

        def build(n: int, k: int) -> str:
            blocks = "".join(f"{s.question} {self._shot_answer(s)}\n\n" for s in own[n][:k])
            return render(self.header, dict(items[n].fields)) + blocks + items[n].question

        if answer_tokens is None or k_max == 0:
            return [build(n, len(own[n])) for n in range(len(items))]
        return fit_shots(build, len(items), k_max, run, answer_tokens)

    def template_hash(self, settings: Settings) -> str:
        return text_hash(
            type(self).__name__,
            self.template,
            f"shots:{self.shots}",
            f"header:{self.header}",
            f"shots_by:{self.shots_by}",
            "fit:drop-last-shots",
            *self._hash_parts(),
        )

    def _hash_parts(self) -> tuple[str, ...]:
        return ()
