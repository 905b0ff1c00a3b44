"""Scores read from a local judge's own probabilities, the format forced (``--kick-judge-scoring probability``).

The judge reads its prompt as it would for a free reply. Instead of letting it write, the reply's score slots
are filled one after another, in the format the protocol asks for (``FORMATS``): the kick summary's four
lines of two scores, the pair's first line, the math tuple, MT-Bench's ``Rating: [[r]]``. For each slot the
engine gives the log-likelihood of every allowed value (1 to 10), each followed by the text that ends it in the
format (so "1" and "10" are told apart), after the prompt and everything forced so far; the values' probabilities,
renormalized over the scale, are the judge's distribution for that slot. The slot's score is its expected value
(G-Eval's probability-weighted score, Liu et al. 2023); the argmax is kept beside it and is what the next slots
are conditioned on (the judge's most likely reply so far: one engine call per slot, which a local judge's engine
answers from the prompt's key/value cache kept between calls, so the prompt runs once per judgment).
A judgment is therefore always readable: no parser, no re-asks. With ``explain`` the explanation is generated
afterwards, after the forced scores (flip reports show it).

Each judgment (its distributions) and each explanation is cached with the judge's replies (judge/cache.py), so
a rerun asks the engine nothing. A ``Forcing`` is what the engine side must offer: ``render`` (the prompt as the
model reads it: its chat template, else the plain layout of local.py), ``loglikelihood`` and ``generate``;
``EngineForcing`` wraps any engine of engines/base.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from pytest_kick.judge.cache import Reply, cache_key
from pytest_kick.judge.local import plain_prompt
from pytest_kick.judge.protocols import SUMMARY_METRICS, Ask
from pytest_kick.judge.runner import Judge, Outcome, Reading
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest

VERSION = "1"  # bump when a judgment is computed differently (enters cache keys and the scorer's fingerprint)
VALUES = tuple(range(1, 11))  # every prompt's scale: 1 to 10
EXPLAIN_TOKENS = 256


@dataclass(frozen=True)
class Slot:
    lead: str  # forced text before the value
    end: str  # forced text after it: ends the value ("1" vs "10")
    position: int  # pairwise: Assistant 1 or 2; 0 for a single rating


_LINE = (Slot("", " ", 1), Slot("", "\n", 2))
FORMATS: dict[str, tuple[Slot, ...]] = {  # per parse.py reader: the format its prompt asks for
    "pair_first_line": _LINE,
    "pair_lines": _LINE * len(SUMMARY_METRICS),
    "pair_tuple": (Slot("(", ",", 1), Slot(" ", ")", 2)),
    "rating": (Slot("Rating: [[", "]]", 0),),
}


class Forcing(Protocol):
    def render(self, conversation) -> str: ...
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]: ...
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...


def render(tokenizer, conversation) -> str:
    """The conversation as the model reads it up to its reply: the chat template (with the generation prompt),
    else local.plain_prompt. A BOS the template writes is dropped when the tokenizer adds one itself."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        messages = [{"role": role, "content": content} for role, content in conversation]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = getattr(tokenizer, "bos_token", None)
        if (
            bos
            and text.startswith(bos)
            and tokenizer("", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
        ):
            text = text[len(bos) :]
        return text
    return plain_prompt(conversation) + " "


class EngineForcing:
    """A ``Forcing`` over an engine of engines/base.py (its ``tokenizer``, if any, renders chat templates)."""

    def __init__(self, engine, progress=None):
        self.engine, self.progress = engine, progress

    def render(self, conversation) -> str:
        return render(getattr(self.engine, "tokenizer", None), conversation)

    def loglikelihood(self, requests):
        return self.engine.loglikelihood(list(requests), progress=self.progress)

    def generate(self, requests):
        return self.engine.generate(list(requests), progress=self.progress)


def distribution(logprobs: Sequence[float]) -> list[float]:
    """Probabilities of the scale's values from their log-likelihoods, renormalized over the scale."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def expected(probs: Sequence[float]) -> float:
    return sum(p * v for p, v in zip(probs, VALUES))


def argmax(probs: Sequence[float]) -> int:
    return VALUES[max(range(len(probs)), key=lambda k: probs[k])]


def forced_text(reader: str, chosen: Sequence[int]) -> str:
    return "".join(f"{s.lead}{v}{s.end}" for s, v in zip(FORMATS[reader], chosen))


def reading(ask: Ask, slots: Sequence[Sequence[float]], point=expected) -> Reading:
    """The scores of one judgment: each slot read by ``point`` (expected value, or argmax), Assistant 1 / 2 mapped
    to the judged model and the reference as runner.read maps a parsed reply."""
    values = [float(point(p)) for p in slots]
    if ask.reader == "rating":
        return Reading(values[0])
    pairs = [values[k : k + 2] for k in range(0, len(values), 2)]
    mine = [p[ask.model_slot - 1] for p in pairs]
    theirs = [p[2 - ask.model_slot] for p in pairs]
    metrics = tuple(zip(SUMMARY_METRICS, mine)) if ask.reader == "pair_lines" else ()
    return Reading(sum(mine) / len(mine), sum(theirs) / len(theirs), metrics)


def describe(ask: Ask, slots: Sequence[Sequence[float]]) -> str:
    """The forced reply, then each slot's expected value and argmax (the flip report's text without explain)."""
    chosen = [argmax(p) for p in slots]
    parts = [f"{expected(p):.2f} (argmax {argmax(p)})" for p in slots]
    forced = forced_text(ask.reader, chosen).strip()
    return f"{forced}\n[scores read from the judge's probabilities: {', '.join(parts)}]"


@dataclass(frozen=True)
class ProbabilityOutcome(Outcome):
    argmax: Reading | None = None  # the judgment read as the most likely value of each slot
    slots: tuple[tuple[float, ...], ...] = ()  # each slot's distribution over VALUES


class ProbabilityJudge:
    """``run(asks) -> [Outcome]`` as runner.Judge, scores read from the forced format's distributions.

    Shares the text judge's cache, counts and names (``judge``); ``forcing`` is a ``Forcing`` or a callable
    returning one (a local judge loads its model only when something is not cached)."""

    scoring = "probability"

    def __init__(self, judge: Judge, forcing, explain: bool = False, explain_tokens: int = EXPLAIN_TOKENS):
        self.text_judge = judge
        self._forcing = forcing
        self.explain = explain
        self.explain_tokens = explain_tokens

    @property
    def forcing(self) -> Forcing:
        if callable(self._forcing) and not hasattr(self._forcing, "loglikelihood"):
            self._forcing = self._forcing()
        return self._forcing

    endpoint = property(lambda self: self.text_judge.endpoint)
    model = property(lambda self: self.text_judge.model)
    reasks = property(lambda self: 0)
    stats = property(lambda self: self.text_judge.stats)
    cache = property(lambda self: self.text_judge.cache)

    def _key(self, ask: Ask, what: str) -> str:
        endpoint = f"{self.endpoint}|probability:{VERSION}:{ask.reader}:{what}"
        return cache_key(endpoint, self.model, ask.messages, 0.0, self.explain_tokens if what == "explain" else 0, 0)

    def _cached(self, key: str):
        hit = self.cache.get(key)
        if hit is None:
            return None
        try:
            found = json.loads(hit.text)
            return found if isinstance(found, (list, str)) else None
        except ValueError:
            return None

    def run(self, asks: Sequence[Ask]) -> list[Outcome]:
        asks = list(asks)
        self.stats.asks += len(asks)
        slots: list = [self._cached(self._key(a, "slots")) for a in asks]
        todo = [k for k, s in enumerate(slots) if s is None]
        self.stats.cache_hits += len(asks) - len(todo)
        if todo:
            self.stats.requests += len(todo)
            for k, found in zip(todo, self._force([asks[k] for k in todo])):
                slots[k] = found
                self.cache.put(self._key(asks[k], "slots"), Reply(json.dumps(found)))
        texts = [describe(a, s) for a, s in zip(asks, slots)]
        if self.explain:
            texts = self._explanations(asks, slots, texts)
        return [
            ProbabilityOutcome(reading(a, s), (t,), "", argmax=reading(a, s, argmax), slots=tuple(tuple(p) for p in s))
            for a, s, t in zip(asks, slots, texts)
        ]

    def _force(self, asks: list[Ask]) -> list[list[list[float]]]:
        """Each ask's slot distributions: its slots asked one after another, each after the argmax of the ones
        before (the judge's most likely reply so far), one engine call per slot. Asks go in the order of their
        prompts, so asks about one article follow each other: an engine that keeps prefixes between calls
        (``LocalEngine(prefix_memory=...)``) then runs each prompt's shared start once, and each step only the
        tokens forced since the last."""
        forcing = self.forcing
        prompts = [forcing.render(a.messages) for a in asks]
        found: list[list[list[float]]] = [[] for _ in asks]
        for k in sorted(range(len(asks)), key=lambda k: prompts[k]):
            written = prompts[k]
            for slot in FORMATS[asks[k].reader]:
                head = written + slot.lead
                answers = forcing.loglikelihood([LoglikelihoodRequest(head, f"{v}{slot.end}") for v in VALUES])
                probs = distribution([lp for lp, _ in answers])
                found[k].append(probs)
                written = f"{head}{argmax(probs)}{slot.end}"
        return found

    def _explanations(self, asks: list[Ask], slots: list, texts: list[str]) -> list[str]:
        """The judge's explanation, generated after its forced (argmax) scores; cached like the scores."""
        keys = [self._key(a, "explain") for a in asks]
        found: list = [self._cached(k) for k in keys]
        todo = [k for k, f in enumerate(found) if not isinstance(f, str)]
        if todo:
            forcing = self.forcing
            requests = [
                GenerationRequest(
                    forcing.render(asks[k].messages) + forced_text(asks[k].reader, [argmax(p) for p in slots[k]]),
                    self.explain_tokens,
                )
                for k in todo
            ]
            for k, text in zip(todo, forcing.generate(requests)):
                found[k] = str(text).strip()
                self.cache.put(keys[k], Reply(json.dumps(found[k])))
        return [f"{t}\n{f}" for t, f in zip(texts, found)]
