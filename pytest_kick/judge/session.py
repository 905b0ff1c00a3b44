"""The judge of one kick session (``--kick-judge openai:<model>`` or ``local:<model>``), for the runtime.

``JudgeSession.task(name, task)`` gives the session's version of a judged task (one holding a scorer and a
variant, ``judge.judgeable``: summarization, instruction): the same task built with a ``JudgeScorer`` (one
per task variant, all sharing one ``Judge``, so one reply cache and one set of counts). Any other task is
returned as it is. The backend is the one the judge's registry entry names (``judge.BUNDLED``):

- ``openai:<model>``: ``client.OpenAIBackend`` at ``--kick-judge-url``, key from the named variable.
- ``local:<model>``: the model loaded on its own (never the gated model's instance, which is compressed
  in place), with its own ``LocalEngine``; loaded when the judge is first needed, offline like any
  ``--kick-model``. Its identity (weights hash) keys the reply cache.

Scores are read from the judge's probabilities under --kick-judge-scoring probability (the default for
``local:``): ``probability.ProbabilityJudge`` forces the format through the local judge's engine,
``served_probability.ServedProbabilityJudge`` reads an ``openai:`` judge's ``top_logprobs``. ``check(name, ...)``
runs the judge's discrimination check of a task once (judge/discrimination.py).

``take()`` returns what judging cost since the last ``take()``: the fixtures record it on the item that
spent it, so the session summary adds it up across xdist workers.
"""

from __future__ import annotations

import os

from pytest_kick import extensions
from pytest_kick.engines.local import LocalEngine
from pytest_kick.hashing import json_hash
from pytest_kick.judge import build_scorer, discrimination, entry, judgeable, local, openai_backend, parse_spec
from pytest_kick.judge.cache import ReplyCache
from pytest_kick.judge.client import CallableBackend, Traffic
from pytest_kick.judge.errors import COUNTS, JUDGE_STATS
from pytest_kick.judge.probability import EngineForcing, ProbabilityJudge
from pytest_kick.judge.runner import DEFAULT_REASKS, Judge
from pytest_kick.judge.served_probability import LogprobBackend, ServedProbabilityJudge
from pytest_kick.models import registry
from pytest_kick.models.devices import pick_device, pick_dtype
from pytest_kick.models.loading import load


def openai_judge(model: str, config, ui, worker_id: str | None):
    """An ``openai:<model>`` judge: the endpoint at --kick-judge-url, its key from the named variable; asked for
    ``top_logprobs`` under --kick-judge-scoring probability (served_probability.py)."""
    options = dict(
        url=config.judge_url,
        key_env=config.judge_key_env,
        concurrency=config.judge_concurrency,
        timeout=config.judge_timeout,
        retries=config.judge_retries,
    )
    if getattr(config, "judge_scoring", "text") == "probability":
        return LogprobBackend(model, **options)
    return openai_backend(model, **options)


# the prompt key/value caches a local judge keeps between calls (probability.py), as a share of its weights' bytes
# (a 1.5B judge in float32: 3.1 GB, ~54k prompt tokens): cases of one task come between the other tasks' cases, so
# a story read for one case should still be kept when the next case of its task asks about it
PREFIX_MEMORY_SHARE = 0.5


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


class LocalJudgeBackend:
    """A ``local:<model>`` judge: loads the model (its own copy) and its engine on first use."""

    def __init__(self, model: str, config, ui, worker_id: str | None):
        self.model_spec, self.config, self.ui, self.worker_id = model, config, ui, worker_id
        self.max_new_tokens = local.DEFAULT_MAX_NEW_TOKENS
        self._backend: CallableBackend | None = None
        self._engine = None
        self.traffic = Traffic()

    def forcing(self):
        """The model's engine for scores read from probabilities (probability.py), loaded on first use."""
        self._load()
        return EngineForcing(self._engine)

    def _load(self) -> CallableBackend:
        if self._backend is None:
            import torch

            mps = lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()  # noqa: E731
            device = pick_device(self.config.device, self.worker_id, os.environ, torch.cuda.device_count, mps)
            source = registry.resolve(self.model_spec)
            self.ui.message(f"loading the judge {source.name}")
            loaded = load(
                source, self.config.cache_dir, device, pick_dtype(self.config.dtype, device), notify=self.ui.message
            )
            self._engine = LocalEngine(
                loaded.model,
                loaded.tokenizer,
                loaded.device,
                self.config.batch_size,
                loaded.dtype,
                prefix_memory=int(PREFIX_MEMORY_SHARE * weight_bytes(loaded.model)),
            )
            identity = f"{source.name}:{json_hash(loaded.identity)[:16]}"
            self._backend = CallableBackend(
                self._chat, source.name, endpoint=f"local:{identity}:greedy:{self.max_new_tokens}"
            )
            self._backend.traffic = self.traffic
        return self._backend

    def _chat(self, conversations) -> list[str]:
        with self.ui.progress(f"judge {self._backend.model}: {len(conversations)} asks") as advance:
            replies = local.engine_chat(self._engine, self.max_new_tokens, advance)(conversations)
        counts = getattr(self._engine, "token_counts", None)
        if counts is not None:
            self.traffic.tokens_in += sum(counts([local.plain_prompt(c) for c in conversations]))
            self.traffic.tokens_out += sum(counts(replies))
        return replies

    @property
    def endpoint(self) -> str:
        return self._load().endpoint

    @property
    def model(self) -> str:
        return registry.resolve(self.model_spec).name  # known without loading (names the task's metric)

    def complete(self, conversations, temperature: float, max_tokens: int):
        return self._load().complete(conversations, temperature, max_tokens)


class JudgeSession:
    def __init__(self, config, ui, worker_id: str | None = None):
        self.config = config
        self.spec = parse_spec(config.judge)
        make = extensions.resolve(entry(self.spec).backend, f"judge {self.spec.kind}")
        backend = make(self.spec.model, config, ui, worker_id)
        self.judge = Judge(backend, ReplyCache(config.cache_dir), DEFAULT_REASKS)
        self.scoring = getattr(config, "judge_scoring", "text")
        if self.scoring == "probability":  # config_judge.py allows it for local: and openai: judges only
            if isinstance(backend, LocalJudgeBackend):
                self.judge = ProbabilityJudge(self.judge, backend.forcing, getattr(config, "judge_explain", False))
            else:
                self.judge = ServedProbabilityJudge(self.judge)
        self._checks: dict = {}
        self._tasks: dict = {}
        self._taken = dict.fromkeys(COUNTS, 0)

    def task(self, name: str, task):
        """``task`` scored by this judge (a new instance; the registry's stays as it is), or ``task`` itself
        when it has no scorer for a judge to replace."""
        if not judgeable(task):
            return task
        if name not in self._tasks:
            scorer = build_scorer(task.family, task.variant, self.config.protocol, None, None, judge=self.judge)
            self._tasks[name] = type(task)(task.variant, scorer=scorer, max_new_tokens=task.max_new_tokens)
        return self._tasks[name]

    def check(self, name: str, task, items, alpha: float, seed: int):
        """The judge's discrimination check on the task's items (judge/discrimination.py), run once per task."""
        if name not in self._checks:
            scorer = self.task(name, task).scorer
            self._checks[name] = discrimination.run(
                self.judge, scorer.family, items, name, self.config.judge, alpha, seed
            )
        return self._checks[name]

    def totals(self) -> dict:
        stats = self.judge.stats
        found = {name: getattr(stats, name) for name in JUDGE_STATS}
        scorers = [t.scorer for t in self._tasks.values()]
        found["items"] = sum(s.items_judged for s in scorers)
        found["item_errors"] = sum(s.item_errors for s in scorers)
        found["order_pairs"] = sum(s.order_pairs for s in scorers)
        found["order_disagreements"] = sum(s.order_disagreements for s in scorers)
        return found

    def take(self) -> dict:
        """The counts since the last ``take`` (plus the judge's name and the first error texts)."""
        now = self.totals()
        delta = {k: now[k] - self._taken[k] for k in COUNTS}
        self._taken = now
        delta["judge"] = self.config.judge
        delta["errors"] = list(self.judge.stats.errors[:3]) if delta["failed_asks"] else []
        return delta

    def first_error(self) -> str:
        return self.judge.stats.errors[0] if self.judge.stats.errors else ""
