"""The task interface: examples in, requests out, a score per item back. No torch here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from pytest_kick.requests import GenerationRequest


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """The examples a task evaluates, and where they came from (part of every baseline key)."""

    examples: tuple[Example, ...]
    source: str  # e.g. "bundled:freebaseqa/freebaseqa_eval_prerelease_sample.jsonl"
    content_hash: str  # sha256 of the data file(s)


@dataclass(frozen=True)
class Settings:
    protocol: str = "strict"
    shots: int = 0
    seed: int = 0
    limit: int | None = None
    data_dir: Path | None = None


class Task(Protocol):
    """One gated task (or one variant of a task family: ``icrqa:open``), as the runtime sees it.

    Items (from ``split``) are any objects with ``id`` (str, unique), ``question`` (str) and ``answers``
    (tuple of str); flip reports show those three.

    A task evaluates either through the shared generation path (``requests`` answered by
    ``Engine.generate``, then ``score`` per item) or, when it defines
    ``evaluate(engine, items, shots, settings, progress) -> (scores, outputs)``, on its own (log-likelihood
    scoring, perplexity windows). Optional methods:
    - ``figure(mean) -> float``: the task's figure from the mean per-item score (default: the mean itself;
      perplexity: exp of the mean per-item negative log-likelihood). The gate judges figures;
    - ``details(items, scores, outputs) -> dict[str, float]``: extra figures for the report (per-category
      accuracy, F1, ROUGE-2, ...), never gated.
    - ``chance(item) -> float``: the score of a model that knows nothing on that one item (multiple
      choice: 1 / the item's number of choices). Default: the task's ``floor`` for every item. The gate
      tests dense against these per-item levels (a Poisson-binomial test where they differ).
    ``floor`` is the score of a model that knows nothing (chance); None when there is no such level
    (perplexity): dense is then always informative.
    """

    name: str  # "mmlu", or "family:variant" ("icrqa:open")
    family: str  # "icrqa" for "icrqa:open"; equal to name for a task without variants
    version: str
    metric: str
    higher_is_better: bool
    floor: float | None

    def load(self, settings: Settings) -> Dataset: ...

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list, list]:
        """(shots, evaluated items): the in-context examples and the deterministic evaluation subset."""
        ...

    def requests(self, items: Sequence, shots: Sequence, settings: Settings) -> list[GenerationRequest]: ...

    def score(self, item, request: GenerationRequest, output: str, settings: Settings) -> float: ...

    def template_hash(self, settings: Settings) -> str: ...


def chance_levels(task, items: Sequence) -> list[float] | float | None:
    """The chance level of each item (``task.chance(item)``), or the task's ``floor`` when the task has no
    ``chance`` method or no floor at all (None: perplexity)."""
    chance = getattr(task, "chance", None)
    if task.floor is None or chance is None:
        return task.floor
    return [float(chance(item)) for item in items]
