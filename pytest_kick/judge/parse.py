"""Reading scores out of a judge's reply. Every parser returns None for a reply it cannot read; none raises.

The formats the prompts ask for (see protocols.py):
- LLM-KICK general and coding: "a single line containing only two values" for Assistant 1 and 2, then
  the explanation. LLM-KICK's own ``parse_score`` (``mt_conversation/gpt4_judge.py``) splits the first
  line at spaces (commas counted as spaces) and accepts exactly two floats; anything else became
  ``[-1, -1]`` and was left out of its averages. ``pair_first_line`` accepts every reply that parser
  accepted, plus the decorated forms real GPT-4 replies take (``8.5/10 for Assistant 1, 6/10 for
  Assistant 2``, ``**8 7**``, ``Scores: 8, 7``). Where both assistants are named on the line, each score
  goes to the assistant it is written beside (``Assistant 2 receives 9, Assistant 1 receives 3`` is (3, 9));
- LLM-KICK math: "a Python tuple containing two numerical scores", at the end of a worked solution:
  ``pair_tuple`` takes the last ``(a, b)`` the reply presents as scores (on a line that speaks of scores,
  or alone on its line: a tuple inside the worked solution, a point or an interval, is no verdict), else
  lines ``Assistant 1: a`` / ``Assistant 2: b``, else two scores on the first line;
- LLM-KICK summaries: four lines of two scores (coherence, consistency, fluency, relevance; the repo's
  ``in-context_summarization/gpt4_judge.py`` reads lines 1-4): ``pair_lines``;
- MT-Bench single-answer grading: ``[[rating]]``. FastChat (``fastchat/llm_judge/common.py``) searches
  ``\\[\\[(\\d+\\.?\\d*)\\]\\]``, then ``\\[(\\d+\\.?\\d*)\\]``; ``rating`` does the same, then accepts
  ``Rating: 7`` as a last resort (never the start of a range: ``the rating 1 to 10`` is no rating).

``problem(reader, text)`` says what is wrong with a reply a reader refuses; a re-ask quotes it (runner.py).

Every score must lie on the prompts' scale, 1 to 10, or be 0 (GPT-4 rates a missing summary 0, see
tests/data); a number outside it (a year, a count) is not a score.
"""

from __future__ import annotations

import re

VERSION = "2"  # bump when a parser reads any reply differently (enters the scorer's fingerprint)
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
_RATING_WORD = re.compile(
    rf"\brating\s*(?:[:=]|\bis\b)\s*\**\s*({_NUMBER})(?![\d.])(?!\s*(?:to|-|–)\s*\d)", re.IGNORECASE
)
_SCORE_WORD = re.compile(r"\bscor(?:e|es|ed|ing)\b", re.IGNORECASE)
_ALONE = re.compile(rf"^\W*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\W*$")
_TOKENS = re.compile(rf"\x00([12])|(?<![\d.])(-?{_NUMBER})(?!\d|\.\d)")


def on_scale(value: float) -> bool:
    return SCALE[0] <= value <= SCALE[1]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def _slot(label: str) -> str:
    return "1" if label.rstrip()[-1] in "1aA" else "2"


def _pair(line: str) -> tuple[float, float] | None:
    """Exactly two scores on one line, ignoring "/10" and punctuation: (Assistant 1, Assistant 2). When both
    assistants are named, each score is the one written beside its name (after it when the line starts
    with a name, "Assistant 2: 9, Assistant 1: 3"; before it otherwise, "9 for Assistant 2, 3 for Assistant
    1"), or in the order the names are given ("Assistant 2 and Assistant 1 get 9 and 3")."""
    marked = _OUT_OF_TEN.sub(" ", _LABEL.sub(lambda m: f" \x00{_slot(m.group())} ", line))
    tokens = [("label", m.group(1)) if m.group(1) else ("score", float(m.group(2))) for m in _TOKENS.finditer(marked)]
    numbers = [value for kind, value in tokens if kind == "score"]
    if len(numbers) != 2 or not all(on_scale(n) for n in numbers):
        return None
    names = list(dict.fromkeys(value for kind, value in tokens if kind == "label"))
    if sorted(names) != ["1", "2"]:
        return numbers[0], numbers[1]
    forward = tokens[0][0] == "label"
    slots = []
    for k, (kind, _) in enumerate(tokens):
        if kind == "score":
            near = tokens[k - 1 :: -1] if forward else tokens[k + 1 :]
            slots.append(next((value for what, value in near if what == "label"), None))
    if sorted(slots, key=str) != ["1", "2"]:
        slots = names  # the names first, then the scores "respectively"
    by_slot = dict(zip(slots, numbers))
    return by_slot["1"], by_slot["2"]


def pair_first_line(text: str) -> tuple[float, float] | None:
    """(Assistant 1, Assistant 2) from the reply's first non-empty line."""
    lines = _lines(text)
    return _pair(lines[0]) if lines else None


def _verdict_tuples(text: str):
    """The ``(a, b)`` on the scale that the reply presents as scores: on a line that speaks of scores, or
    alone on its line (a point or an interval in a worked solution is no verdict); (end offset, pair)."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if _SCORE_WORD.search(line) or _ALONE.match(line.strip()):
            for match in _TUPLE.finditer(line):
                pair = (float(match.group(1)), float(match.group(2)))
                if all(on_scale(n) for n in pair):
                    yield offset + match.end(), pair
        offset += len(line)


def pair_tuple(text: str) -> tuple[float, float] | None:
    """(Assistant 1, Assistant 2) from the end of the reply, where the prompt asks for the verdict: the
    last ``(a, b)`` given as scores or the last lines ``Assistant 1: a`` and ``Assistant 2: b`` (``a/10``
    too), whichever comes later; else two scores on the first line (unless it holds a tuple of another kind)."""
    text = str(text)
    found: list[tuple[int, tuple[float, float]]] = list(_verdict_tuples(text))[-1:]
    labelled = [list(_LABELLED[slot].finditer(text)) for slot in (1, 2)]
    if all(labelled):
        first, second = labelled[0][-1], labelled[1][-1]
        pair = (float(first.group(1)), float(second.group(1)))
        if all(on_scale(n) for n in pair):
            found.append((max(first.end(), second.end()), pair))
    if found:
        return max(found)[1]
    lines = _lines(text)
    if lines and _TUPLE.search(lines[0]):  # a tuple that is not given as the scores: no verdict on this line
        return None
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


def _quote(text: str, width: int = 50) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= width else text[:width] + "...")


def _line_problem(line: str) -> str:
    marked = _OUT_OF_TEN.sub(" ", _LABEL.sub(" ", line))
    numbers = [float(n) for n in _NUMBERS.findall(marked)]
    if not numbers:
        return f"{_quote(line)} holds no score"
    off = [n for n in numbers if not on_scale(n)]
    if off:
        return f"{_quote(line)} holds {off[0]:g}, which is off the 1 to 10 scale"
    return f"{_quote(line)} holds {len(numbers)} number{'s' if len(numbers) > 1 else ''}, not two scores"


def problem(reader: str, text: str) -> str:
    """What is wrong with a reply ``reader`` refuses, in a sentence that quotes it (a re-ask says this)."""
    lines = _lines(text)
    if not lines:
        return "Your reply was empty."
    if reader == "pair_first_line":
        return f"The first line of your reply, {_line_problem(lines[0])}."
    if reader == "pair_lines":
        bad = next((k for k, line in enumerate(lines[:4]) if _pair(line) is None), None)
        if bad is None:
            return f"Your reply has {len(lines)} line{'s' if len(lines) > 1 else ''}, not the four score lines."
        return f"Line {bad + 1} of your reply, {_line_problem(lines[bad])}."
    if reader == "pair_tuple":
        return f"Your reply ends with {_quote(lines[-1])}, not with the tuple of the two scores."
    return f"Your reply has no rating in the form [[rating]]; it ends with {_quote(lines[-1])}."
