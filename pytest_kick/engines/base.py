"""The engine protocol: three calls, the only way a task reaches a model.

Every call takes a list of requests and returns one answer per request, in the caller's order, so an
engine is free to sort, batch, cache and share prefixes as it likes. ``progress(done, total)`` is
called as requests are answered. No torch here: a served engine needs none.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, Union

from pytest_kick.finite import check_answers
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

Progress = Callable[[int, int], None]  # (requests done, requests total)


class Engine(Protocol):
    """The three calls. Optional, for tasks that fit prompts to the model (MMLU drops shots that do not
    fit): ``max_length`` (the model's context in tokens) and ``token_counts(texts) -> list[int]`` (tokens
    each text becomes as a prompt, special tokens included). Without them a task sends its prompts as
    they are; an engine may then keep a too-long context's last tokens."""

    name: str  # "local", "openai-completions": part of every result's provenance

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        """Greedy continuations (new text only), cut at each request's stop strings."""
        ...

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Progress | None = None
    ) -> list[tuple[float, bool]]:
        """(sum of the continuation's token log-probabilities, is the continuation the greedy one)."""
        ...

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], progress: Progress | None = None
    ) -> list[tuple[float, ...]]:
        """Per-token log-probabilities of each request's text (see RollingRequest)."""
        ...


Request = Union[GenerationRequest, LoglikelihoodRequest, RollingRequest]
_CALLS = {GenerationRequest: "generate", LoglikelihoodRequest: "loglikelihood", RollingRequest: "loglikelihood_rolling"}


class Runner:
    """What a task's ``evaluate`` is given: ``run(requests)`` answers any mix of the three request kinds, one
    answer per request in the caller's order (a str, a (float, bool), a tuple of floats), each kind in one
    engine call. A task calls it once, or once per round when later requests depend on earlier answers.

    ``token_counts(texts)`` (prompt tokens, special tokens included, or None when the engine cannot count)
    and ``max_length`` (the model's context in tokens, or None) let a task fit a prompt to the model, as
    MMLU drops shots that do not fit; ``tokenize(text)`` gives token ids (or None).
    """

    def __init__(self, engine: Engine, progress: Progress | None = None):
        self.engine = engine
        self.progress = progress
        self.done = 0  # requests answered so far, over every round

    @property
    def max_length(self) -> int | None:
        return getattr(self.engine, "max_length", None)

    def token_counts(self, texts: Sequence[str]) -> list[int] | None:
        count = getattr(self.engine, "token_counts", None)
        return None if count is None else list(count(texts))

    def tokenize(self, text: str) -> list[int] | None:
        """Token ids of ``text`` as a prompt (special tokens included), or None when the engine cannot tokenize:
        for a task that tokenizes a corpus once and cuts it into windows (kick perplexity)."""
        encode = getattr(self.engine, "tokenize", None)
        return None if encode is None else encode(text)

    def __call__(self, requests: Sequence[Request]) -> list:
        answers: list = [None] * len(requests)
        kinds: dict[type, list[int]] = {}
        for i, r in enumerate(requests):
            if type(r) not in _CALLS:
                raise TypeError(f"not a request: {r!r:.80}")
            kinds.setdefault(type(r), []).append(i)
        base, total = self.done, self.done + len(requests)
        for kind, indices in kinds.items():
            offset = base

            def advance(done: int, _total: int, offset=offset) -> None:
                if self.progress:
                    self.progress(offset + done, total)

            found = getattr(self.engine, _CALLS[kind])([requests[i] for i in indices], progress=advance)
            if len(found) != len(indices):
                raise RuntimeError(f"engine {self.engine.name!r} gave {len(found)} answers to {len(indices)} requests")
            if kind is not GenerationRequest:  # a NaN log-likelihood must never become an arbitrary choice
                check_answers(_CALLS[kind], found, [requests[i] for i in indices], self.engine.name)
            for i, answer in zip(indices, found):
                answers[i] = answer
            base += len(indices)
        self.done = total
        return answers
