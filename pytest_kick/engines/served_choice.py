"""Fewer, cheaper log-likelihood requests to a server (the served engine's loglikelihood).

- **One request per multiple-choice question.** Requests that share their context tokens and whose
  continuations are one token each (MMLU's " A" ... " D") are answered by one request: the context as prompt,
  ``max_tokens: 1``, ``temperature: 0``, ``logprobs: K`` and ``return_tokens_as_token_ids: true`` (vLLM: the
  top-K of the next token keyed ``"token_id:<id>"``). Each choice's log-prob is read there; greedy is "is the
  best of them". Where the server does not key by token id, or a choice is not among the top K, the question
  falls back to one request per choice (``echo`` + ``prompt_logprobs``, served.py).
- **Verified before it is used.** The engine's first such question is asked both ways; the shortcut is used
  only if both give the same choice and log-probs within ``TOLERANCE``, else never in that engine.
- **Requests sharing a prefix go out together.** Prompts are sent in two waves: first one prompt of each
  prefix family (the same first ``PREFIX`` tokens: an MMLU subject's 5-shot block), so a server with a prefix
  cache (vLLM's automatic prefix caching) computes the prefix once, then the rest, concurrently, reusing it.
  (vLLM computes prompt log-probs without its prefix cache, so this pays where no prompt log-probs are asked.)
"""

from __future__ import annotations

import math

from pytest_kick.errors import KickError

TOP = 20  # log-probs asked per question: vLLM's default --max-logprobs
TOLERANCE = 0.1  # nats: largest difference from the one-request-per-choice path accepted in the check
PREFIX = 64  # tokens: prompts alike in these are one prefix family
UNSUPPORTED = "unsupported"  # the server's top log-probs are not keyed by token id


def groups(pairs: list[tuple[list[int], list[int]]]) -> tuple[dict[tuple, list[int]], list[int]]:
    """({context ids: indices of its one-token requests}, indices of every other request); a context counts when
    at least two one-token requests share it and at most ``TOP`` do."""
    found: dict[tuple, list[int]] = {}
    for k, (context, continuation) in enumerate(pairs):
        if len(continuation) == 1:
            found.setdefault(tuple(context), []).append(k)
    chosen = {c: ks for c, ks in found.items() if 2 <= len(ks) <= TOP}
    taken = {k for ks in chosen.values() for k in ks}
    return chosen, [k for k in range(len(pairs)) if k not in taken]


def next_token_logprobs(engine, context: list[int], wanted: list[int]):
    """(log-prob, is greedy) of each wanted token after ``context``, from one request; None when a wanted token is
    outside the top ``TOP``, ``UNSUPPORTED`` when the reply has no top log-probs keyed by token id."""
    choice = engine._complete(
        {
            "prompt": context,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": TOP,
            "return_tokens_as_token_ids": True,
        }
    )
    logprobs = choice.get("logprobs")
    tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    first = tops[0] if isinstance(tops, list) and tops and isinstance(tops[0], dict) else None
    if not first:
        return UNSUPPORTED
    by_id = {}
    for key, value in first.items():
        if not (isinstance(key, str) and key.startswith("token_id:")) or not isinstance(value, (int, float)):
            return UNSUPPORTED  # a server keying by text: the choice's token cannot be told apart exactly
        if math.isnan(value):
            raise KickError(f"POST {engine.client.url('completions')}: a top log-prob is NaN")
        by_id[int(key.removeprefix("token_id:"))] = float(value)
    best = max(by_id.values())
    if any(t not in by_id for t in wanted):
        return None
    return [(by_id[t], by_id[t] >= best) for t in wanted]


def agree(one: list[tuple[float, bool]], each: list[tuple[float, bool]]) -> tuple[bool, float]:
    """(whether the one-request answers may stand for the per-choice ones, their largest difference)."""
    difference = max(abs(a[0] - b[0]) for a, b in zip(one, each))
    same_choice = max(range(len(one)), key=lambda k: one[k][0]) == max(range(len(each)), key=lambda k: each[k][0])
    return same_choice and difference <= TOLERANCE, difference


def waves(prompts: list[list[int]]) -> tuple[list[int], list[int]]:
    """(indices to send first: one per prefix family, indices to send after them)."""
    first, seen = [], set()
    for k, prompt in enumerate(prompts):
        key = tuple(prompt[:PREFIX])
        if key not in seen:
            seen.add(key)
            first.append(k)
    chosen = set(first)
    return first, [k for k in range(len(prompts)) if k not in chosen]


def loglikelihoods(engine, requests, progress=None) -> list[tuple[float, bool]]:
    """The served engine's loglikelihood with a tokenizer: questions of one-token choices in one request each
    once verified, every other request (and every question the shortcut cannot answer) one request each;
    prompts sharing a prefix sent in waves."""
    pairs = [engine._pair(r.context, r.continuation) for r in requests]
    found, rest = groups(pairs) if engine.one_request is not False else ({}, list(range(len(pairs))))
    for context in [c for c in found if engine.max_length and len(c) >= engine.max_length]:
        rest.extend(found.pop(context))
    results: list = [None] * len(requests)
    contexts = list(found)
    while contexts and engine.one_request is None:  # verified on the first question that can tell
        context = contexts.pop(0)
        for k, answer in zip(found[context], _verify(engine, list(context), found[context], pairs, requests)):
            results[k] = answer
    total = len(requests)
    if contexts and engine.one_request:
        grouped, done = sum(len(found[c]) for c in contexts), sum(r is not None for r in results)
        answers = send_in_waves(
            engine,
            lambda c: next_token_logprobs(engine, list(c), [pairs[k][1][0] for k in found[c]]),
            contexts,
            [list(c) for c in contexts],
            None if progress is None else lambda d, t: progress(done + round(d * grouped / t), total),
        )
        for context, answer in zip(contexts, answers):
            for n, k in enumerate(found[context]):
                if answer is None:
                    rest.append(k)  # a choice outside the top log-probs: one request per choice
                else:
                    results[k] = answer[n]
    else:
        rest.extend(k for c in contexts for k in found[c])
    rest = sorted(set(rest))
    done = total - len(rest)
    answers = send_in_waves(
        engine,
        lambda k: engine._one_loglikelihood(requests[k], pairs[k]),
        rest,
        [pairs[k][0] + pairs[k][1] for k in rest],
        None if progress is None else lambda d, t: progress(done + d, total),
    )
    for k, answer in zip(rest, answers):
        results[k] = answer
    return results


def _verify(engine, context: list[int], indices: list[int], pairs, requests) -> list[tuple[float, bool]]:
    """A question asked both ways; the shortcut is used from then on only when both agree (engine.one_request).
    Returns the one-request-per-choice answers, which stand for this question either way."""
    each = [engine._one_loglikelihood(requests[k], pairs[k]) for k in indices]
    one = next_token_logprobs(engine, context, [pairs[k][1][0] for k in indices])
    if one == UNSUPPORTED:
        engine.one_request = False
    elif one is not None:
        agreed, difference = agree(one, each)
        engine.one_request = agreed
        engine.choice_check = {"agreed": agreed, "largest_difference": difference, "choices": len(indices)}
    return each


def send_in_waves(engine, one, items: list, prompts: list[list[int]], progress=None) -> list:
    """``one`` over ``items`` (through the engine's concurrent map): first one item of each prefix family, then
    the rest; answers in the items' order."""
    first, later = waves(prompts)
    total = len(items)
    head = engine._map(one, [items[k] for k in first], None if progress is None else lambda d, t: progress(d, total))
    tail = engine._map(
        one, [items[k] for k in later], None if progress is None else lambda d, t: progress(len(first) + d, total)
    )
    results: list = [None] * total
    for k, answer in zip(first + later, head + tail):
        results[k] = answer
    return results
