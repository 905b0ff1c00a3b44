"""Answer normalisation (SQuAD / TriviaQA style): lower-case, drop punctuation and articles, squeeze spaces."""

from __future__ import annotations

import re
import string
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"‘", "’", "´", "`", "“", "”", "–", "—"}


def normalize(text: str) -> str:
    """``text`` lower-cased (NFKC), punctuation and articles (a, an, the) dropped, spaces squeezed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_answer(text: str, answers) -> bool:
    """True when some answer, normalised, occurs in normalised ``text`` as whole words."""
    haystack = f" {normalize(text)} "
    for answer in answers:
        needle = normalize(answer)
        if needle and f" {needle} " in haystack:
            return True
    return False
