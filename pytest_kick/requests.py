"""What a task asks of an engine. Plain data, shared by tasks (which build requests) and engines
(which answer them), so neither imports the other. Three kinds, after lm-evaluation-harness's model
interface: greedy generation, the log-likelihood of a continuation, and the rolling log-likelihood of
a text (perplexity)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationRequest:
    """Greedy continuation of ``prompt``, cut at the first stop string.

    At most ``max_new_tokens`` new tokens; with ``length_factor`` > 0, at most ``length_factor`` x the
    prompt's token count as well (LLM-KICK's ``max_length = 3 x prompt length`` is length_factor 2).
    With ``messages`` ((role, content) pairs), a model that has a chat template is prompted through it
    and ``prompt`` is the plain-text fallback for models without one.
    With ``first_line``, decoding also stops at the first newline that follows non-space text, and the
    continuation is cut there (leading blank lines are kept, so an answer after them is not lost): for tasks
    that score only the first line of the answer.
    """

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    length_factor: int = 0
    messages: tuple[tuple[str, str], ...] = ()
    first_line: bool = False


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Log-probability of ``continuation`` following ``context``: answered as (sum of the continuation
    tokens' log-probabilities, whether greedy decoding would produce exactly those tokens)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class RollingRequest:
    """Per-token log-probabilities of ``text``, each token conditioned on what comes before it in
    ``context`` + ``text``, the model seeing at most ``window`` tokens at a time (or its context length, if
    shorter). ``context`` is conditioned on, never scored (the text before an item of a corpus; only its
    last tokens that fit are used). Context and text are tokenized separately, so the text's first token
    starts a token. Answered as a tuple of floats, one per token of ``text``: every token is scored, a
    text longer than a window in several windows (the first window scores as many tokens as fit after the
    context; each later one the next ``window // 2`` tokens, in a window of ``window`` tokens ending with them).
    With an empty ``context`` the text's first token has nothing to condition on and is not scored.
    ``ids``, when given, are the text's token ids, used as they are (``text`` is then not tokenized): for a
    task that cut a corpus tokenized once into windows (LLM-KICK's ``eval_ppl``)."""

    text: str
    context: str = ""
    window: int = 1024
    ids: tuple[int, ...] = ()
