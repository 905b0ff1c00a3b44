"""LLM-as-judge scoring for summarization and instruction following (``--kick-judge``).

    protocols.py  the judge prompts (LLM-KICK pairwise for ``kick``, MT-Bench single grading for ``strict``)
    parse.py      reading scores out of replies
    client.py     the judge backends: an OpenAI-compatible endpoint (``openai`` package), or a chat callable
    cache.py      replies on disk, keyed by endpoint, model, messages, decoding
    runner.py     cache, then backend; re-asks; counts
    scorer.py     the task's Scorer: one rating per item, errors as NaN, explanations
    errors.py     when judge errors turn a case into an error; which items a case pairs
    session.py    the session's judge (--kick-judge): its backend, the judged tasks, what it spent

``parse_spec`` reads a ``--kick-judge`` value; ``build_scorer`` makes the scorer for one task. The judges by
name are the registry's (``extensions.judges``): ``BUNDLED`` below, plus the ones installed packages register
under the ``pytest_kick.judges`` entry-point group. A task is judged when it holds a ``scorer`` and a
``variant`` (the scorer seam of tasks/scorers.py: summarization, instruction), unless it says ``judged = False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pytest_kick import extensions
from pytest_kick.errors import KickError

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class JudgeEntry:
    """A judge in the registry (extensions.JudgeEntry documents each field)."""

    name: str
    what: str
    form: str  # how --help and errors spell it: "openai:<model> (e.g. openai:gpt-4)"
    backend: str | None  # None: the task's own scorer; else "module:object", backend(model, config, ui, worker_id)
    takes_model: bool = True
    options: tuple[str, ...] = ()  # the --kick-judge-* options it takes
    settings: str | None = None  # "module:object": settings(values, text, flag, model) -> KickConfig fields
    scoring: str = "text"  # --kick-judge-scoring's default: "probability" for a judge whose model runs here


BUNDLED = (
    JudgeEntry("rouge", "the task's ROUGE scorer, an offline proxy", "rouge", None, takes_model=False),
    JudgeEntry(
        "openai",
        "an OpenAI-compatible chat endpoint",
        "openai:<model> (e.g. openai:gpt-4)",
        "pytest_kick.judge.session:openai_judge",
        options=("judge-url", "judge-key-env", "judge-concurrency", "judge-timeout", "judge-retries", "judge-scoring"),
        settings="pytest_kick.config_judge:openai_settings",
    ),
    JudgeEntry(
        "local",
        "a --kick-model run in this process",
        "local:<model> (a --kick-model name)",
        "pytest_kick.judge.session:LocalJudgeBackend",
        options=("judge-scoring", "judge-explain"),
        settings="pytest_kick.config_judge:local_settings",
        scoring="probability",
    ),
)


@dataclass(frozen=True)
class JudgeSpec:
    kind: str  # a judge's name: rouge | openai | local | a registered one
    model: str = ""  # the judge model: an endpoint's model name, or a --kick-model name for local


def parse_spec(value: str) -> JudgeSpec:
    """``rouge``, ``openai:<model>``, ``local:<model>`` (or a registered judge's form); a KickError saying what is
    accepted otherwise."""
    text = (value or "").strip()
    kind, sep, model = text.partition(":")
    entry = extensions.judges.entries().get(kind)
    if entry is not None and entry.takes_model == bool(sep) and (model.strip() or not entry.takes_model):
        return JudgeSpec(kind, model.strip())
    forms = [e.form for e in extensions.judges.entries().values()]
    raise KickError(f"--kick-judge {value!r}: expected {', '.join(forms[:-1])} or {forms[-1]}")


def entry(spec: JudgeSpec):
    return extensions.judges.get(spec.kind)


def judgeable(task) -> bool:
    """Whether a judge can score ``task``: it holds a scorer to replace and a variant to rebuild it from
    (tasks/scorers.py), and does not say ``judged = False``."""
    return hasattr(task, "scorer") and hasattr(task, "variant") and getattr(task, "judged", True)


def judges(value: str, task) -> bool:
    """Whether ``--kick-judge value`` replaces ``task``'s own scorer."""
    return entry(parse_spec(value)).backend is not None and judgeable(task)


def openai_backend(
    model: str, url: str | None = None, key_env: str | None = None, concurrency: int = DEFAULT_CONCURRENCY, **options
):
    from pytest_kick.judge.client import OpenAIBackend  # lazy: ~6 ms (threads, email) on every pytest run

    return OpenAIBackend(model, url=url, key_env=key_env, concurrency=concurrency, **options)


def callable_backend(chat: Callable, model: str, endpoint: str | None = None):
    """A judge reached through ``chat(conversations) -> list[str]`` (e.g. the engine running a local model)."""
    from pytest_kick.judge.client import CallableBackend  # lazy: ~6 ms (threads, email) on every pytest run

    return CallableBackend(chat, model, endpoint)


def build_scorer(
    task_family: str,
    task_variant: str,
    protocol: str,
    backend,
    cache_dir: Path | str | None,
    reasks: int | None = None,
    judge=None,
):
    """The judge scorer for one task (``summarization``/``instruction`` + variant) under ``protocol``.

    Share one ``Judge`` (pass ``judge``) between the tasks of a session, so its counts cover them all.
    """
    from pytest_kick.judge.cache import ReplyCache  # lazy: judge modules, ~12 ms on every pytest run
    from pytest_kick.judge.protocols import family_for  # lazy: judge modules, ~12 ms on every pytest run
    from pytest_kick.judge.runner import DEFAULT_REASKS, Judge  # lazy: judge modules, ~12 ms on every pytest run
    from pytest_kick.judge.scorer import JudgeScorer  # lazy: judge modules, ~12 ms on every pytest run

    if judge is None:
        judge = Judge(backend, ReplyCache(cache_dir), DEFAULT_REASKS if reasks is None else reasks)
    return JudgeScorer(judge, family_for(task_family, task_variant, protocol))
