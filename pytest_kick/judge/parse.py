"""Reading scores out of a judge's reply. Every parser returns None for a reply it cannot read; none raises.

The formats the prompts ask for (see protocols.py):
- LLM-KICK general and coding: "a single line containing only two values" for Assistant 1 and 2, then
  the explanation. LLM-KICK's own ``parse_score`` (``mt_conversation/gpt4_judge.py``) splits the first
  line at spaces (commas counted as spaces) and accepts exactly two floats; anything else became
  ``[-1, -1]`` and was left out of its averages. ``pair_first_line`` accepts every reply that parser
  accepted, plus the decorated forms real GPT-4 replies take (``8.5/10 for Assistant 1, 6/10 for
  Assistant 2``, ``**8 7**``, ``Scores: 8, 7``);
- LLM-KICK math: "a Python tuple containing two numerical scores", at the end of a worked solution:
  ``pair_tuple`` takes the last ``(a, b)`` in the reply, else lines ``Assistant 1: a`` / ``Assistant 2:
  b``, else two scores on the first line;
- LLM-KICK summaries: four lines of two scores (coherence, consistency, fluency, relevance; the repo's
  ``in-context_summarization/gpt4_judge.py`` reads lines 1-4): ``pair_lines``;
- MT-Bench single-answer grading: ``[[rating]]``. FastChat (``fastchat/llm_judge/common.py``) searches
  ``\\[\\[(\\d+\\.?\\d*)\\]\\]``, then ``\\[(\\d+\\.?\\d*)\\]``; ``rating`` does the same, then accepts
  ``Rating: 7`` as a last resort.

Every score must lie on the prompts' scale, 1 to 10, or be 0 (GPT-4 rates a missing summary 0, see
tests/data); a number outside it (a year, a count) is not a score.
"""

from __future__ import annotations

import re

VERSION = "1"  # bump when a parser reads any reply differently (enters the scorer's fingerprint)
SCALE = (0.0, 10.0)  # the prompts say 1-10, but GPT-4 gives 0 to a missing summary ("10 0", real reply)
_NUMBER = r"\d+(?:\.\d+)?"
_LABEL = re.compile(r"\bassistant\s*(?:[12]|[ab]\b)", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"\s*/\s*10(?!\d|\.\d)")
_NUMBERS = re.compile(rf"(?<![\d.])-?{_NUMBER}(?!\d|\.\d)")  # "-1": a negative, off the scale
_TUPLE = re.compile(rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")
_DOUBLE_BRACKET = re.compile(rf"\[\[\s*({_NUMBER})\s*\]\]")
_BRACKET = re.compile(rf"\[\s*({_NUMBER})\s*\]")
_LABELLED = {
    slot: re.compile(
        rf"^\W*assistant\s*{slot}\W*?:\s*\**\s*({_NUMBER})\s*(?:/\s*10)?\W*$", re.IGNORECASE | re.MULTILINE
    )
    for slot in (1, 2)
}
_RATING_WORD = re.compile(rf"\brating\s*[:=]?\s*\**\s*({_NUMBER})", re.IGNORECASE)


def on_scale(value: float) -> bool:
    return SCALE[0] <= value <= SCALE[1]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def _pair(line: str) -> tuple[float, float] | None:
    """Exactly two scores on one line, ignoring labels ("Assistant 1"), "/10" and punctuation."""
    cleaned = _OUT_OF_TEN.sub(" ", _LABEL.sub(" ", line))
    numbers = [float(n) for n in _NUMBERS.findall(cleaned)]
    if len(numbers) != 2 or not all(on_scale(n) for n in numbers):
        return None
    return numbers[0], numbers[1]


def pair_first_line(text: str) -> tuple[float, float] | None:
    """(Assistant 1, Assistant 2) from the reply's first non-empty line."""
    lines = _lines(text)
    return _pair(lines[0]) if lines else None


def pair_tuple(text: str) -> tuple[float, float] | None:
    """(Assistant 1, Assistant 2) from the end of the reply, where the prompt asks for the verdict: the
    last ``(a, b)`` or the last lines ``Assistant 1: a`` and ``Assistant 2: b`` (``a/10`` too), whichever
    comes later; else two scores on the first line."""
    text = str(text)
    found: list[tuple[int, tuple[float, float]]] = []
    for match in reversed(list(_TUPLE.finditer(text))):
        pair = (float(match.group(1)), float(match.group(2)))
        if all(on_scale(n) for n in pair):
            found.append((match.end(), pair))
            break
    labelled = [list(_LABELLED[slot].finditer(text)) for slot in (1, 2)]
    if all(labelled):
        first, second = labelled[0][-1], labelled[1][-1]
        pair = (float(first.group(1)), float(second.group(1)))
        if all(on_scale(n) for n in pair):
            found.append((max(first.end(), second.end()), pair))
    if found:
        return max(found)[1]
    return pair_first_line(text)


def pair_lines(text: str, count: int = 4) -> list[tuple[float, float]] | None:
    """One (Assistant 1, Assistant 2) pair from each of the reply's first ``count`` non-empty lines."""
    lines = _lines(text)
    if len(lines) < count:
        return None
    pairs = [_pair(line) for line in lines[:count]]
    if any(p is None for p in pairs):
        return None
    return pairs  # type: ignore[return-value]


def rating(text: str) -> float | None:
    """A single answer's rating: ``[[r]]``, else ``[r]``, else ``Rating: r`` (the first of each kind)."""
    text = str(text)
    for pattern in (_DOUBLE_BRACKET, _BRACKET, _RATING_WORD):
        match = pattern.search(text)
        if match:
            value = float(match.group(1))
            return value if on_scale(value) else None
    return None
