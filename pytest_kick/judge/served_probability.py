"""Scores read from a served judge's ``top_logprobs`` (``openai:<model>``, ``--kick-judge-scoring probability``).

A served judge keeps writing free text (its explanation included) and is asked for the log-probabilities of
its reply's tokens with their ``TOP`` alternatives (``logprobs`` / ``top_logprobs`` of the chat-completions
API; vLLM and OpenAI return them). The reply is read as runner.read reads it; then each score the reply wrote
as a whole number is replaced by the expected value of the judge's distribution over 1 to 10 at that token
(the alternatives that are such numbers, renormalized; "10" written as "1" then "0" splits the "1" by the
next token's probability of "0"), the argmax kept beside it. A score the distribution cannot be read for
(no ``top_logprobs`` in the reply, a decimal score, a slot not found) keeps its written value.

A reply without readable scores is handed to the text judge (runner.Judge), which re-asks as usual: the
first reply is put in its cache as its first ask, so it is not asked twice. Replies and their slot
distributions are cached together (one entry per ask), so a rerun asks the server nothing.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass

from pytest_kick.judge import parse
from pytest_kick.judge.cache import Reply, cache_key
from pytest_kick.judge.client import Completion, OpenAIBackend
from pytest_kick.judge.probability import VALUES, ProbabilityOutcome, argmax, reading
from pytest_kick.judge.runner import Judge, read

TOP = 20  # the most alternatives OpenAI's API returns per token
VERSION = "1"
_INT = r"(?<![\d.])(\d{1,2})(?![\d.]\d)"
_RATING = re.compile(rf"\[\[\s*{_INT}\s*\]\]")
_TUPLE = re.compile(rf"\(\s*{_INT}\s*,\s*{_INT}\s*\)")
_LABEL = re.compile(r"assistant\s*$|/\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LogprobCompletion(Completion):
    tokens: tuple = ()  # ((token text, ((alternative, logprob), ...)), ...) of the reply, in order


class LogprobBackend(OpenAIBackend):
    """An ``openai:`` backend whose requests ask for ``logprobs`` with ``TOP`` alternatives per token."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last = threading.local()  # the raw body of this thread's last reply
        self._client = _AskingLogprobs(self._client, self._last)

    def _one(self, conversation, temperature: float, max_tokens: int) -> Completion:
        self._last.body = None
        done = super()._one(conversation, temperature, max_tokens)
        tokens = reply_tokens(self._last.body) if done.text is not None else ()
        return LogprobCompletion(done.text, done.error, done.tokens_in, done.tokens_out, done.attempts, tokens)


class _AskingLogprobs:
    """The openai client's ``chat.completions.with_raw_response.create`` with logprobs asked, the body kept."""

    def __init__(self, client, last):
        self._client, self._last = client, last
        self.chat = self.completions = self.with_raw_response = self

    def create(self, **request):
        raw = self._client.chat.completions.with_raw_response.create(**request, logprobs=True, top_logprobs=TOP)
        self._last.body = raw.http_response.text
        return raw


def reply_tokens(body: str | None) -> tuple:
    """The first choice's tokens with their alternatives, () when the body has none."""
    try:
        content = json.loads(body)["choices"][0]["logprobs"]["content"]
        return tuple(
            (str(t["token"]), tuple((str(a["token"]), float(a["logprob"])) for a in t.get("top_logprobs") or ()))
            for t in content
        )
    except (TypeError, ValueError, KeyError, IndexError):
        return ()


def score_spans(reader: str, text: str, written: tuple[float, ...]) -> list[tuple[int, int]] | None:
    """Where in ``text`` the reply wrote its scores (``written``, in the reader's order), or None when unsure."""
    if reader == "rating":
        found = [m.span(1) for m in _RATING.finditer(text)][:1]
    elif reader == "pair_tuple":
        found = [s for m in list(_TUPLE.finditer(text))[-1:] for s in (m.span(1), m.span(2))]
    else:
        count = 4 if reader == "pair_lines" else 1
        found, at = [], 0
        for line in text.splitlines(keepends=True):
            if line.strip() and count:
                count -= 1
                found += [(at + m.start(1), at + m.end(1)) for m in re.finditer(_INT, line) if not _label(line, m)]
            at += len(line)
    values = tuple(float(text[a:b]) for a, b in found)
    return found if values == tuple(written) else None


def _label(line: str, match) -> bool:
    return bool(_LABEL.search(line[: match.start(1)])) or line[match.end(1) :].lstrip().startswith("/")


def slot_distribution(tokens: tuple, start: int) -> list[float] | None:
    """The distribution over VALUES at the token where a score starts (character ``start``), or None."""
    at = 0
    for n, (token, alternatives) in enumerate(tokens):
        if at <= start < at + len(token):
            lead = token[: start - at]
            mass = dict.fromkeys(VALUES, 0.0)
            for alt, lp in alternatives:
                digits = alt[len(lead) :].strip() if alt.startswith(lead) else ""
                if digits.isdigit() and int(digits) in mass:
                    mass[int(digits)] += math.exp(lp)
            if token[len(lead) :].strip() == "1" and n + 1 < len(tokens) and tokens[n + 1][0].startswith("0"):
                zero = sum(math.exp(lp) for alt, lp in tokens[n + 1][1] if alt.strip() == "0")
                mass[10], mass[1] = mass[10] + mass[1] * zero, mass[1] * (1 - zero)
            total = sum(mass.values())
            return [mass[v] / total for v in VALUES] if total > 0 else None
        at += len(token)
    return None


class ServedProbabilityJudge:
    """``run(asks)`` as runner.Judge: a served judge's free replies, their scores read from ``top_logprobs``."""

    scoring = "probability"

    def __init__(self, judge: Judge):
        self.text_judge = judge

    endpoint = property(lambda self: self.text_judge.endpoint)
    model = property(lambda self: self.text_judge.model)
    reasks = property(lambda self: self.text_judge.reasks)
    stats = property(lambda self: self.text_judge.stats)
    cache = property(lambda self: self.text_judge.cache)
    backend = property(lambda self: self.text_judge.backend)

    def _key(self, ask) -> str:
        endpoint = f"{self.endpoint}|top_logprobs:{VERSION}"
        return cache_key(endpoint, self.model, ask.messages, ask.decoding.temperature, ask.decoding.max_tokens, 0)

    def run(self, asks):
        asks = list(asks)
        found: list = [None] * len(asks)
        for k, ask in enumerate(asks):
            hit = self.cache.get(self._key(ask))
            if hit is not None:
                self.stats.cache_hits += 1
                found[k] = (hit.text, json.loads(hit.text)["text"])
        todo = [k for k, f in enumerate(found) if f is None]
        by_decoding: dict = {}
        for k in todo:
            by_decoding.setdefault(asks[k].decoding, []).append(k)
        for decoding, indices in by_decoding.items():
            before = self.backend.traffic.requests, self.backend.traffic.retries
            done = self.backend.complete([asks[k].messages for k in indices], decoding.temperature, decoding.max_tokens)
            self.stats.requests += self.backend.traffic.requests - before[0]
            self.stats.retries += self.backend.traffic.retries - before[1]
            for k, completion in zip(indices, done):
                self.stats.tokens_in += completion.tokens_in
                self.stats.tokens_out += completion.tokens_out
                if completion.text is not None:
                    record = {"text": completion.text, "tokens": getattr(completion, "tokens", ())}
                    found[k] = (json.dumps(record), completion.text)
                    self.cache.put(self._key(asks[k]), Reply(found[k][0], completion.tokens_in, completion.tokens_out))
        outcomes: list = [None] * len(asks)
        fallback = []
        self.stats.asks += len(asks)
        for k, ask in enumerate(asks):
            outcome = None if found[k] is None else self._outcome(ask, *found[k])
            if outcome is None:
                fallback.append(k)  # the text judge reads this reply as its first ask, then re-asks
            else:
                outcomes[k] = outcome
        if fallback:
            self.stats.asks -= len(fallback)  # counted again by the text judge
            given = [None if found[k] is None else found[k][1] for k in fallback]
            for k, outcome in zip(fallback, self.text_judge.run([asks[k] for k in fallback], given)):
                outcomes[k] = outcome
        return outcomes

    def _outcome(self, ask, record: str, text: str):
        """The ask's outcome from its reply and tokens; None when the reply holds no readable scores."""
        written = read(ask, text)
        if written is None:
            return None
        tokens = tuple((t, tuple(map(tuple, alts))) for t, alts in json.loads(record).get("tokens") or ())
        slots = _written_slots(ask.reader, text)
        spans = score_spans(ask.reader, text, slots) if slots else None
        dists = [slot_distribution(tokens, a) for a, _ in spans] if spans and tokens else None
        if not dists or any(d is None for d in dists):
            return ProbabilityOutcome(written, (text,), "")  # no distribution to read: the written scores
        return ProbabilityOutcome(
            reading(ask, dists), (text,), "", argmax=reading(ask, dists, argmax), slots=tuple(map(tuple, dists))
        )


def _written_slots(reader: str, text: str) -> tuple[float, ...] | None:
    """The scores the reply wrote, in slot order (Assistant 1, Assistant 2 per pair; or the rating)."""
    found = {"pair_first_line": parse.pair_first_line, "pair_tuple": parse.pair_tuple, "rating": parse.rating}
    if reader == "pair_lines":
        pairs = parse.pair_lines(text)
        return None if pairs is None else tuple(v for p in pairs for v in p)
    value = found[reader](text)
    return None if value is None else (tuple(value) if isinstance(value, tuple) else (value,))
