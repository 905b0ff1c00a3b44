"""The common task shapes, ready to instantiate: generation scored by a metric and perplexity over a text file
here, multiple choice by log-likelihood in tasks/choice.py; the file-backed ones build on ``_FileTask``
(tasks/file_task.py). Declarative task files (``--kick-task-file``) build these; a Python user builds them directly
(``pytest_kick.api``). Items come from a JSONL, CSV or Parquet file, one record per item."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest, RollingRequest
from pytest_kick.tasks.base import Dataset, Example, Settings
from pytest_kick.tasks.data import subset
from pytest_kick.tasks.file_task import TextItem, _FileTask, _text
from pytest_kick.tasks.normalize import contains_answer, normalize
from pytest_kick.tasks.perplexity import nll_scores
from pytest_kick.tasks.prompts import render

METRICS = ("exact", "contains", "rougeL")


class Generation(_FileTask):
    """Greedy generation, scored against the item's answers: ``exact`` (normalised equality with any answer),
    ``contains`` (an answer occurs in the output, whole words), ``rougeL`` (best ROUGE-L F1 over answers)."""

    higher_is_better = True
    floor = 0.0
    score_range = (0.0, 1.0)  # every item scores within it (the sequential gate bets on that)

    def __init__(
        self,
        name: str,
        data,
        template: str = "{question}\nAnswer:",
        answer: str = "answer",
        metric: str = "contains",
        max_new_tokens: int = 32,
        stop: Sequence[str] = ("\n",),
        **options,
    ):
        super().__init__(name, data, template, **options)
        if metric not in METRICS:
            raise KickError(f"{self.where}: metric {metric!r} is not one of {', '.join(METRICS)}")
        self.answer, self.metric, self.max_new_tokens, self.stop = answer, metric, max_new_tokens, tuple(stop)

    def item(self, line: int, record: dict, index: int, path: Path) -> TextItem:
        fields = self._template_fields(line, record, path)
        if self.answer not in record:
            raise KickError(f"{path}:{line}: record lacks the answer field {self.answer!r}")
        value = record[self.answer]
        value = value.tolist() if hasattr(value, "tolist") else value  # a Parquet list column read by datasets
        use = "answer: names a field holding one answer (text) or a list of answers"
        if isinstance(value, list):
            answers = tuple(_text(a, path, line, f"{self.answer}[{n}]", use) for n, a in enumerate(value))
        else:
            answers = (_text(value, path, line, self.answer, use),)
        if not answers or not all(a.strip() for a in answers):
            raise KickError(f"{path}:{line}: the answer field {self.answer!r} is empty")
        return TextItem(self._id(line, record, index, path), render(self.template, dict(fields)), answers, fields)

    def evaluate(self, items, shots, settings: Settings, run):
        """One greedy generation per item (room for ``max_new_tokens`` kept when shots are fitted), scored by the
        metric; the output is the generated text."""
        prompts = self.contexts(items, shots, run, [self.max_new_tokens] * len(items))
        answers = run([GenerationRequest(p, self.max_new_tokens, self.stop) for p in prompts])
        return [self.score(i, None, a, settings) for i, a in zip(items, answers)], list(answers)

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
        self.name, self.family, self.data, self.window, self.version = (
            name,
            name.split(":")[0],
            Path(data),
            window,
            version,
        )
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
