"""Prompt pieces of the file-backed tasks (tasks/simple.py, tasks/choice.py): templates over a record's fields,
few-shot blocks, and fitting shots into the model's context. Plain text work, no model.

A template names a record's fields in braces, ``{question}``, optionally through a filter, ``{subject|spaces}``
(``spaces``: underscores become spaces; ``lower``, ``upper``, ``strip``). A name that is not a field is left
as written.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

FIELD = re.compile(r"{(\w+)(?:\|(\w+))?}")
FILTERS: dict[str, Callable[[str], str]] = {
    "spaces": lambda s: s.replace("_", " "),
    "lower": str.lower,
    "upper": str.upper,
    "strip": str.strip,
}


def fields_of(template: str) -> list[str]:
    """The field names a template uses, in order."""
    return [name for name, _ in FIELD.findall(template)]


def template_problem(template: str) -> str | None:
    """Why a template cannot be rendered (an unknown filter), or None."""
    for name, how in FIELD.findall(template):
        if how and how not in FILTERS:
            return f"{{{name}|{how}}}: unknown filter {how!r}; known: {', '.join(FILTERS)}"
    return None


def render(template: str, fields: Mapping[str, str]) -> str:
    def one(match: re.Match) -> str:
        name, how = match.group(1), match.group(2)
        if name not in fields:
            return match.group(0)
        value = str(fields[name])
        return FILTERS[how](value) if how else value

    return FIELD.sub(one, template)


def fit_shots(build: Callable[[int, int], str], n: int, k_max: int, run, answer_tokens: Sequence[int]) -> list[str]:
    """Each of ``n`` prompts (``build(item index, shots)``) with the most shots, at most ``k_max``, whose tokens plus
    the item's ``answer_tokens`` fit the model's context (``run.max_length``), shots dropped from the last one (as
    Hendrycks' MMLU evaluation does); a prompt too long even without shots is sent as is (the engine keeps its last
    tokens). All ``k_max`` shots when the engine cannot count tokens."""
    limit, counter = getattr(run, "max_length", None), getattr(run, "token_counts", None)
    prompts: list[str] = [""] * n
    pending = list(range(n))
    for k in range(k_max, -1, -1):
        texts = [build(i, k) for i in pending]
        counts = counter(texts) if limit and counter is not None and k > 0 else None
        if counts is None:
            for i, text in zip(pending, texts):
                prompts[i] = text
            break
        left = []
        for i, text, count in zip(pending, texts, counts):
            if count + answer_tokens[i] <= limit:
                prompts[i] = text
            else:
                left.append(i)
        pending = left
        if not pending:
            break
    return prompts


def answer_tokens(run, prompts: Sequence[str], continuations: Sequence[Sequence[str]]) -> list[int] | None:
    """Per prompt, the most tokens one of its continuations adds to it (counted in context), or None when the
    engine cannot count tokens."""
    counter = getattr(run, "token_counts", None)
    if counter is None or not getattr(run, "max_length", None):
        return None
    texts = [p + c for p, cs in zip(prompts, continuations) for c in (cs or ("",))]
    counts = counter(list(prompts) + texts)
    if counts is None:
        return None
    base, rest = counts[: len(prompts)], iter(counts[len(prompts) :])
    return [max(next(rest) - b for _ in (cs or ("",))) for b, cs in zip(base, continuations)]
