"""The engine protocol: three calls, the only way a task reaches a model.

Every call takes a list of requests and returns one answer per request, in the caller's order, so an
engine is free to sort, batch, cache and share prefixes as it likes. ``progress(done, total)`` is
called as requests are answered. No torch here: a served engine needs none.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

Progress = Callable[[int, int], None]  # (requests done, requests total)


class Engine(Protocol):
    name: str  # "local", "openai-completions": part of every result's provenance

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        """Greedy continuations (new text only), cut at each request's stop strings."""
        ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[tuple[float, bool]]:
        """(sum of the continuation's token log-probabilities, is the continuation the greedy one)."""
        ...

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[tuple[float, ...]]:
        """Per-token log-probabilities of each request's text (see RollingRequest)."""
        ...
