"""What a task asks of the engine. Plain data, shared by tasks (which build requests) and the engine
(which answers them), so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationRequest:
    """Greedy continuation of ``prompt``, cut at the first stop string.

    At most ``max_new_tokens`` new tokens; with ``length_factor`` > 0, at most ``length_factor`` x the
    prompt's token count as well (LLM-KICK's ``max_length = 3 x prompt length`` is length_factor 2).
    With ``messages`` ((role, content) pairs), a model that has a chat template is prompted through it
    and ``prompt`` is the plain-text fallback for models without one.
    """

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    length_factor: int = 0
    messages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Log-probability of ``continuation`` following ``context``."""

    context: str
    continuation: str
