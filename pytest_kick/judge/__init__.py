"""LLM-as-judge scoring for summarization and instruction following (``--kick-judge``).

    protocols.py  the judge prompts (LLM-KICK pairwise for ``kick``, MT-Bench single grading for ``strict``)
    parse.py      reading scores out of replies
    client.py     the judge backends: an OpenAI-compatible endpoint (``openai`` package), or a chat callable
    cache.py      replies on disk, keyed by endpoint, model, messages, decoding
    runner.py     cache, then backend; re-asks; counts
    scorer.py     the task's Scorer: one rating per item, errors as NaN, explanations
    errors.py     when judge errors turn a case into an error; which items a case pairs
    session.py    the session's judge (--kick-judge): its backend, the judged tasks, what it spent

``parse_spec`` reads a ``--kick-judge`` value; ``build_scorer`` makes the scorer for one task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pytest_kick.errors import KickError

KINDS = ("rouge", "openai", "local")
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class JudgeSpec:
    kind: str  # rouge | openai | local
    model: str = ""  # the judge model: an endpoint's model name, or a --kick-model name for local


def parse_spec(value: str) -> JudgeSpec:
    """``rouge``, ``openai:<model>`` or ``local:<model>``; a KickError saying what is accepted otherwise."""
    text = (value or "").strip()
    if text == "rouge":
        return JudgeSpec("rouge")
    kind, sep, model = text.partition(":")
    if sep and kind in ("openai", "local") and model.strip():
        return JudgeSpec(kind, model.strip())
    raise KickError(f"--kick-judge {value!r}: expected rouge, openai:<model> (e.g. openai:gpt-4) "
                    "or local:<model> (a --kick-model name)")


def openai_backend(model: str, url: str | None = None, key_env: str | None = None,
                   concurrency: int = DEFAULT_CONCURRENCY, **options):
    from pytest_kick.judge.client import OpenAIBackend

    return OpenAIBackend(model, url=url, key_env=key_env, concurrency=concurrency, **options)


def callable_backend(chat: Callable, model: str, endpoint: str | None = None):
    """A judge reached through ``chat(conversations) -> list[str]`` (e.g. the engine running a local model)."""
    from pytest_kick.judge.client import CallableBackend

    return CallableBackend(chat, model, endpoint)


def build_scorer(task_family: str, task_variant: str, protocol: str, backend, cache_dir: Path | str | None,
                 reasks: int | None = None, judge=None):
    """The judge scorer for one task (``summarization``/``instruction`` + variant) under ``protocol``.

    Share one ``Judge`` (pass ``judge``) between the tasks of a session, so its counts cover them all.
    """
    from pytest_kick.judge.cache import ReplyCache
    from pytest_kick.judge.protocols import family_for
    from pytest_kick.judge.runner import DEFAULT_REASKS, Judge
    from pytest_kick.judge.scorer import JudgeScorer

    if judge is None:
        judge = Judge(backend, ReplyCache(cache_dir), DEFAULT_REASKS if reasks is None else reasks)
    return JudgeScorer(judge, family_for(task_family, task_variant, protocol))
