"""Asking the judge: cache first, then the backend, concurrently; re-ask what cannot be read.

``Judge.run(asks)`` returns one ``Outcome`` per ask, in order. An ask's reply is read with its parser
(parse.py); a reply that cannot be read is asked again, at most ``reasks`` times (``conversation``): the
conversation so far, then what was wrong with the last reply, quoting it (``parse.problem``), and a reminder
of the format, so no re-ask repeats an earlier one. Only a reply that was read is cached (each re-ask its
own entry, see cache.py): an unreadable one is never replayed as an answer, a rerun asks again. What still
cannot be read (its error quotes the start of the last reply), and a request that failed after the
backend's retries, is an outcome with an ``error``: the scorer turns it into a judge error for the item,
never into a score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from pytest_kick.judge import parse
from pytest_kick.judge.cache import Reply, ReplyCache, cache_key
from pytest_kick.judge.protocols import REMINDERS, SUMMARY_METRICS, Ask

READERS = {
    "pair_first_line": parse.pair_first_line,
    "pair_tuple": parse.pair_tuple,
    "pair_lines": parse.pair_lines,
    "rating": parse.rating,
}
DEFAULT_REASKS = 2


@dataclass(frozen=True)
class Reading:
    """Scores read from one reply: the judged model's, the reference's (pairwise only), per metric."""

    model: float
    reference: float | None = None
    metrics: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Outcome:
    reading: Reading | None
    replies: tuple[str, ...]  # every reply the judge gave to this ask (re-asks included)
    error: str = ""  # why there is no reading

    @property
    def explanation(self) -> str:
        return self.replies[-1] if self.replies else ""


@dataclass
class JudgeStats:
    """What judging cost and how it went (the session summary and reports print these)."""

    requests: int = 0  # sent to the judge, retries included
    retries: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    asks: int = 0  # judgments asked for (re-asks not counted)
    unreadable_first: int = 0  # of which: not read at the first ask (the reply unreadable, or the request failed)
    reasks: int = 0  # replies that could not be read and were asked again
    failed_asks: int = 0  # asks without a reading (unreadable after re-asks, or the request failed)
    unreadable: int = 0  # of which: replies that could not be read
    errors: list[str] = field(default_factory=list)  # distinct error texts, first few

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "errors"}


def conversation(ask: Ask, replies: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The messages of ask number ``len(replies)``: the question, then each earlier reply followed by what
    was wrong with it (quoted) and the format again."""
    messages = ask.messages
    for reply in replies:
        messages += (("assistant", reply), ("user", f"{parse.problem(ask.reader, reply)} {REMINDERS[ask.reader]}"))
    return messages


def read(ask: Ask, text: str) -> Reading | None:
    """The scores in ``text`` for ``ask``, or None when the reply does not hold them."""
    found = READERS[ask.reader](text)
    if found is None:
        return None
    if ask.reader == "rating":
        return Reading(float(found))
    pairs = found if ask.reader == "pair_lines" else [found]
    if ask.model_slot not in (1, 2):
        raise ValueError(f"pairwise ask without the judged model's slot: {ask.template}")
    mine = [p[ask.model_slot - 1] for p in pairs]
    theirs = [p[2 - ask.model_slot] for p in pairs]
    metrics = tuple(zip(SUMMARY_METRICS, mine)) if ask.reader == "pair_lines" else ()
    return Reading(sum(mine) / len(mine), sum(theirs) / len(theirs), metrics)


class Judge:
    """A backend (client.py), a reply cache and the counts of what was asked."""

    def __init__(self, backend, cache: ReplyCache | None = None, reasks: int = DEFAULT_REASKS):
        self.backend = backend
        self.cache = cache or ReplyCache(None)
        self.reasks = reasks
        self.stats = JudgeStats()

    @property
    def endpoint(self) -> str:
        return self.backend.endpoint

    @property
    def model(self) -> str:
        return self.backend.model

    def _key(self, ask: Ask, messages, number: int) -> str:
        return cache_key(self.endpoint, self.model, messages, ask.decoding.temperature, ask.decoding.max_tokens, number)

    def _replies(self, asks: list[Ask], conversations: list, number: int) -> list[tuple[str | None, str, Reply | None]]:
        """(reply text or None, error, the reply to cache once it is read: None for a cache hit) for each ask, as
        ask ``number``: from the cache, else the backend. A cached reply that cannot be read (an older version
        cached every reply) is asked again."""
        found: list[tuple[str | None, str, Reply | None]] = [(None, "", None)] * len(asks)
        missing: dict[tuple, list[int]] = {}
        for k, (ask, messages) in enumerate(zip(asks, conversations)):
            hit = self.cache.get(self._key(ask, messages, number))
            if hit is not None and read(ask, hit.text) is not None:
                self.stats.cache_hits += 1
                found[k] = (hit.text, "", None)
            else:
                missing.setdefault((ask.decoding, messages), []).append(k)
        by_decoding: dict = {}
        for (decoding, messages), indices in missing.items():  # identical asks are sent once
            by_decoding.setdefault(decoding, []).append((messages, indices))
        for decoding, groups in by_decoding.items():
            before = _traffic(self.backend)
            done = self.backend.complete([m for m, _ in groups], decoding.temperature, decoding.max_tokens)
            after = _traffic(self.backend)
            for name in ("requests", "retries", "tokens_in", "tokens_out"):
                setattr(self.stats, name, getattr(self.stats, name) + after[name] - before[name])
            for (messages, indices), completion in zip(groups, done):
                reply = Reply(completion.text, completion.tokens_in, completion.tokens_out)
                for k in indices:
                    found[k] = (completion.text, completion.error, None if completion.text is None else reply)
        return found

    def run(self, asks: Sequence[Ask], given: Sequence[str | None] | None = None) -> list[Outcome]:
        """Each ask's outcome, re-asking unreadable replies. ``given``: a first reply already had for an ask (a
        served judge's scored reply that could not be read), taken as its first ask instead of asking again."""
        asks = list(asks)
        given = list(given) if given is not None else [None] * len(asks)
        replies: list[list[str]] = [[] for _ in asks]
        readings: list[Reading | None] = [None] * len(asks)
        errors = [""] * len(asks)
        pending = list(range(len(asks)))
        self.stats.asks += len(asks)
        for number in range(self.reasks + 1):
            if not pending:
                break
            if number:
                self.stats.reasks += len(pending)
            conversations = [conversation(asks[k], replies[k]) for k in pending]
            asked = [j for j, k in enumerate(pending) if number or given[k] is None]
            fetched = self._replies([asks[pending[j]] for j in asked], [conversations[j] for j in asked], number)
            results = [(given[k], "", None) for k in pending]  # a given first reply is never cached again here
            for j, result in zip(asked, fetched):
                results[j] = result
            still = []
            for k, messages, (text, error, fresh) in zip(pending, conversations, results):
                if text is None:
                    errors[k] = f"judge request failed: {error}"
                    self.stats.unreadable_first += number == 0  # no reading at the first ask either
                    continue
                replies[k].append(text)
                readings[k] = read(asks[k], text)
                if readings[k] is None:
                    errors[k] = f"judge reply could not be read ({number + 1} asks): {glimpse(text)}"
                    still.append(k)
                    continue
                errors[k] = ""
                if fresh is not None:
                    self.cache.put(self._key(asks[k], messages, number), fresh)
            if number == 0:
                self.stats.unreadable_first += len(still)
            pending = still
        self.stats.unreadable += len(pending)  # still unreadable after the last ask
        outcomes = []
        for k in range(len(asks)):
            if readings[k] is None:
                self.stats.failed_asks += 1
                if errors[k] not in self.stats.errors and len(self.stats.errors) < 5:
                    self.stats.errors.append(errors[k])
            outcomes.append(Outcome(readings[k], tuple(replies[k]), errors[k]))
        return outcomes


def glimpse(reply: str, width: int = 60) -> str:
    """The start of an unreadable reply, quoted (line breaks shown as \\n, since the formats are about
    lines): enough to see what the judge wrote instead of the scores."""
    text = str(reply).strip()
    return repr(text if len(text) <= width else text[:width] + "...")


def _traffic(backend) -> dict:
    traffic = getattr(backend, "traffic", None)
    names = ("requests", "retries", "tokens_in", "tokens_out")
    return {n: int(getattr(traffic, n, 0)) for n in names}
