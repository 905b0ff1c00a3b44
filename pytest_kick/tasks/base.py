"""The task interface: items in, requests out, a score per item back. No torch here, no model: a task
reaches a model only through the ``run`` callable its ``evaluate`` is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, Union

from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

Request = Union[GenerationRequest, LoglikelihoodRequest, RollingRequest]


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
    accelerate: bool = True  # --kick-accelerate: a task may share work between items (strict perplexity streams)


class Task(Protocol):
    """One gated task (or one variant of a task family: ``icrqa:open``), as the runtime sees it.

    Items (from ``split``) are any objects with ``id`` (str, unique), ``question`` (str) and ``answers``
    (tuple of str); flip reports show those three.

    How a case flows: ``evaluate(items, shots, settings, run)`` builds requests (the three kinds of
    pytest_kick.requests: generation, log-likelihood, rolling log-likelihood), has ``run`` answer them
    (``run(requests) -> answers``, one per request, in order; run is a :class:`pytest_kick.engines.base.Runner`
    around whichever engine the user chose), and turns the answers into one score and one output text per
    item. A task never sees a model: the engine batches, caches and shares prefixes. A task whose later
    requests depend on earlier answers calls ``run`` once per round (MT-Bench: turn 2 sees the model's
    reply to turn 1). A task with one generation request per item inherits :class:`OneRequestPerItem` and
    writes ``requests`` and ``score`` only.

    A task keeps no per-run state: one instance serves every run of a process (pytester sessions, xdist
    workers, a search's levels), so what a run needs travels in what ``split`` returns and ``evaluate`` is
    given, never on ``self``.

    Optional methods:
    - ``figure(mean) -> float``: the task's figure from the mean per-item score (default: the mean itself;
      perplexity: exp of the mean per-item negative log-likelihood). The gate judges figures;
    - ``details(items, scores, outputs) -> dict[str, float]``: extra figures for the report (per-category
      accuracy, F1, ROUGE-2, ...), never gated.
    - ``judge_forms``: a dict ``{protocol: form}`` naming the judge prompt (``judge/protocols.py`` FORMS:
      ``kick-summary``, ``kick-instruction``, ``mtbench-single``) that grades the task's outputs under
      ``--kick-judge``, per ``--kick-protocol``; a task without it is never judged.
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

    def evaluate(
        self, items: Sequence, shots: Sequence, settings: Settings, run: Callable[[Sequence[Request]], list]
    ) -> tuple[list[float], list[str]]:
        """(one score per item, one output text per item), the requests answered by ``run``."""
        ...

    def template_hash(self, settings: Settings) -> str: ...


class OneRequestPerItem:
    """``evaluate`` for a task that asks one request per item and scores each answer on its own:
    ``requests(items, shots, settings)`` and ``score(item, request, answer, settings)``. The output of an
    item is its answer (generated text), or ``output(item, request, answer)`` when the task defines one."""

    def requests(self, items: Sequence, shots: Sequence, settings: Settings) -> list[Request]:
        raise NotImplementedError

    def score(self, item, request, answer, settings: Settings) -> float:
        raise NotImplementedError

    def output(self, item, request, answer) -> str:
        return answer if isinstance(answer, str) else repr(answer)

    def evaluate(
        self, items: Sequence, shots: Sequence, settings: Settings, run: Callable[[Sequence[Request]], list]
    ) -> tuple[list[float], list[str]]:
        requests = self.requests(items, shots, settings)
        if len(requests) != len(items):
            raise KickError(
                f"{getattr(self, 'name', type(self).__name__)}: {len(requests)} requests for {len(items)} items"
            )
        answers = run(requests)
        scores = [self.score(i, r, a, settings) for i, r, a in zip(items, requests, answers)]
        return scores, [self.output(i, r, a) for i, r, a in zip(items, requests, answers)]


def chance_levels(task, items: Sequence) -> list[float] | float | None:
    """The chance level of each item (``task.chance(item)``), or the task's ``floor`` when the task has no
    ``chance`` method or no floor at all (None: perplexity)."""
    chance = getattr(task, "chance", None)
    if task.floor is None or chance is None:
        return task.floor
    return [float(chance(item)) for item in items]


def mean_chance(levels: Sequence[float] | float | None) -> float | None:
    """One chance level for a report: the mean of per-item levels, the task's floor, or None."""
    if levels is None or isinstance(levels, (int, float)):
        return levels
    return sum(levels) / len(levels) if levels else None


def choices_summary(task, items: Sequence) -> str | None:
    """'3-5 choices per item, chance 0.267' for a task whose items list their choices (multiple choice), else None:
    what a reader needs to tell a score from guessing. When the choices are lettered in the prompt (items with
    ``labels``) and the correct one has the same letter in every item, it says so: the model's position bias
    then decides the score."""
    counts = [len(getattr(i, "choices", ())) for i in items]
    if not counts or not all(counts) or getattr(task, "chance", None) is None:
        return None
    low, high = min(counts), max(counts)
    spread = f"{low}" if low == high else f"{low}-{high}"
    line = f"{spread} choices per item, chance {mean_chance(chance_levels(task, items)):.3g}"
    lettered = [i for i in items if getattr(i, "labels", ())]
    if len(lettered) == len(items) > 1 and len({i.labels[i.label] for i in items}) == 1:
        line += (
            f"; the correct choice is always {items[0].labels[items[0].label]}: position bias decides (shuffle: true)"
        )
    return line
