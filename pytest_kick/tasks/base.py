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
    name: str
    version: str
    metric: str
    higher_is_better: bool
    floor: float  # the score of a model that knows nothing (chance level)

    def load(self, settings: Settings) -> Dataset: ...

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list[Example], list[Example]]:
        """(shots, evaluated items): the in-context examples and the deterministic evaluation subset."""
        ...

    def requests(self, items: Sequence[Example], shots: Sequence[Example], settings: Settings) -> list[GenerationRequest]: ...

    def score(self, item: Example, request: GenerationRequest, output: str, settings: Settings) -> float: ...

    def template_hash(self, settings: Settings) -> str: ...
