"""In-context retrieval QA on TriviaQA (LLM-KICK, section "In-context Retrieval Augmented QA").

Two variants of one family, evaluated on the same questions:
- ``icrqa:closed``: the question alone, ``"Answer these questions:\\n\\nQ: {q}\\nA:"``;
- ``icrqa:open``: a supporting passage first, then ``"Based on these texts, answer these questions:\\n\\nQ:
  {q}\\nA:"``. LLM-KICK (VITA-Group/llm-kick, incontext_qa/main_icrqa.py) builds the passage as the first
  Wikipedia evidence document followed directly by the first web evidence document, keeps the first 3072
  characters, writes ``f"{context[:3072]}\\n\\n{prompt}"`` and strips it before tokenizing (so the closed
  prompt is the question template alone).

Both are prompted as plain text, as LLM-KICK prompted Vicuna (no chat template), decoded greedily for at
most 32 new tokens; the prediction is the first line of the stripped continuation (``kick``: as the repo
extracts it, ``(prompt + continuation).split(prompt_end)[1].strip().split("\n")[0]``: the continuation
is first cut where it repeats the question block, so one that repeats it at once predicts ""). Answers are compared
after the official TriviaQA normalisation (mandarjoshi90/triviaqa, evaluation/triviaqa_evaluation.py:
underscores to spaces, lower-case, punctuation to spaces, articles a/an/the removed, whitespace squeezed)
against the question's normalised aliases:
- protocol ``strict`` (default): exact match, the official TriviaQA metric;
- protocol ``kick``: LLM-KICK's ``exact_match_score``, a two-way containment: the normalised alias occurs
  in the normalised prediction or the prediction in the alias (plain substrings; note that an empty
  prediction is contained in every alias and so scores 1, as it did in the repo).
Token-level F1 (max over aliases) and both match rates are reported as details.

Data order: ``--kick-data-dir DIR`` (``DIR/triviaqa/*.jsonl`` records in the bundled layout), else the
Hugging Face hub ``trivia_qa`` / ``rc`` validation split (as LLM-KICK), else the bundled sample: 114
verified-Wikipedia-dev questions whose passages are *reconstructed* from a 2019 Wikipedia copy of the
question's evidence page (the original TriviaQA evidence text is not bundled; see fixtures/triviaqa/SOURCES.md).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest
from pytest_kick.tasks.base import Dataset, OneRequestPerItem, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows, read_jsonl, split_shots

CLOSED_HEADER = "Answer these questions:\n\n"
OPEN_HEADER = "Based on these texts, answer these questions:\n\n"
QUESTION = "Q: {question}\nA:"
SHOT = "Q: {question}\nA: {answer}\n\n"  # --kick-shots only (LLM-KICK is zero-shot): earlier Q/A pairs
PASSAGE = "{context}\n\n{end}"  # then .strip(), as LLM-KICK
CONTEXT_CHARS = 3072
MAX_NEW_TOKENS = 32
VARIANTS = ("closed", "open")
BUNDLED = "triviaqa/triviaqa_verified_wikipedia_dev_reconstructed_context.jsonl"
BUNDLED_NOTE = " (passages reconstructed from Wikipedia)"
HUB = ("trivia_qa", "rc", "validation")


# --- the official TriviaQA answer normalisation and metrics ------------------------------------

_EXCLUDE = set(string.punctuation + "‘’´`")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """TriviaQA's ``normalize_answer`` (mandarjoshi90/triviaqa, evaluation/triviaqa_evaluation.py)."""
    text = text.replace("_", " ").lower()
    text = "".join(" " if ch in _EXCLUDE else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split()).strip()


def exact_match(prediction: str, truths: Sequence[str]) -> bool:
    norm = normalize_answer(prediction)
    return any(norm == normalize_answer(t) for t in truths)


def containment(prediction: str, truths: Sequence[str]) -> bool:
    """LLM-KICK's exact_match_score: normalised alias in normalised prediction, or the other way round."""
    norm = normalize_answer(prediction)
    return any(normalize_answer(t) in norm or norm in normalize_answer(t) for t in truths)


def f1(prediction: str, truths: Sequence[str]) -> float:
    """Token-level F1 of the normalised prediction, the best over the aliases."""
    predicted = normalize_answer(prediction).split()
    best = 0.0
    for truth in truths:
        expected = normalize_answer(truth).split()
        same = sum((Counter(predicted) & Counter(expected)).values())
        if same:
            precision, recall = same / len(predicted), same / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def prediction(output: str) -> str:
    """The answer in a continuation: its first line once stripped (LLM-KICK: ``.strip().split("\\n")[0]``)."""
    return output.strip().split("\n")[0]


def kick_prediction(prompt: str, prompt_end: str, output: str) -> str:
    """LLM-KICK's extraction (incontext_qa/main_icrqa.py): the decoded prompt + continuation split on the
    question block ``prompt_end``, the part after its first occurrence, stripped, its first line. As the
    prompt ends with ``prompt_end``, that is the continuation up to where it repeats the block."""
    parts = (prompt + output).split(prompt_end)
    return parts[1].strip().split("\n")[0] if len(parts) > 1 else prediction(output)


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriviaItem:
    id: str
    question: str
    answers: tuple[str, ...]  # Answer.Value first, then the aliases (for display and shots)
    normalized_aliases: tuple[str, ...]  # the ground truths of the official evaluation
    context: str  # the evidence passage (open book); kept whole, cut to CONTEXT_CHARS in the prompt

    @property
    def truths(self) -> tuple[str, ...]:
        return self.normalized_aliases or tuple(normalize_answer(a) for a in self.answers)


def _strings(value, what: str, where: str, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value) or (not value and not allow_empty):
        raise KickError(
            f"{where}: {what} must be a {'' if allow_empty else 'non-empty '}list of strings, got {value!r:.80}"
        )
    found = tuple(a for a in value if a.strip())
    if not found and not allow_empty:
        raise KickError(f"{where}: {what} holds only empty strings")
    return found


def items_from_jsonl(path: Path) -> list[TriviaItem]:
    """Records in the bundled layout: id, question, answers, context (and optional normalized_answers)."""
    items = []
    for record in read_jsonl(path, required=("id", "question", "answers", "context")):
        where = f"{path} record {record['id']!r}"
        if not isinstance(record["question"], str) or not isinstance(record["context"], str):
            raise KickError(f"{where}: question and context must be strings")
        answers = _strings(record["answers"], "answers", where)
        normalized = _strings(record.get("normalized_answers", []), "normalized_answers", where, allow_empty=True)
        items.append(TriviaItem(str(record["id"]), record["question"], answers, normalized, record["context"]))
    return items


def item_from_hub(row: dict) -> TriviaItem:
    """A row of the hub's trivia_qa/rc: the context LLM-KICK built, wiki evidence then web evidence."""
    try:
        answer = row["answer"]
        answers = tuple(dict.fromkeys(a for a in [answer["value"], *answer["aliases"]] if a and a.strip()))
        context = ""
        pages, results = row["entity_pages"], row["search_results"]
        if pages["filename"]:
            context += pages["wiki_context"][0]
        if results["filename"]:
            context += results["search_context"][0]
        return TriviaItem(
            str(row["question_id"]),
            row["question"],
            answers,
            tuple(answer["normalized_aliases"]),
            context[:CONTEXT_CHARS],
        )
    except (KeyError, IndexError, TypeError) as err:
        raise KickError(
            f"hub trivia_qa row {row.get('question_id', '?')!r} has an unexpected layout "
            f"({type(err).__name__}: {err}); pass --kick-data-dir with triviaqa/*.jsonl"
        ) from None


LOCAL_LAYOUT = f"triviaqa/*.jsonl records with id, question, answers, context (as the bundled {BUNDLED})"


def load_items(settings: Settings, notify=None) -> Dataset:
    """The question set shared by both variants (data order: data dir, hub, bundled)."""
    files = sorted((Path(settings.data_dir) / "triviaqa").glob("*.jsonl")) if settings.data_dir else []
    if files:  # a data dir without triviaqa/ falls through to the hub or the bundled sample (runtime warns)
        items = [i for f in files for i in items_from_jsonl(f)]
        return Dataset(
            tuple(_unique(items)), "local:" + ",".join(str(f) for f in files), text_hash(*(file_hash(f) for f in files))
        )
    hub = hub_rows(*HUB, notify=notify)
    if hub is not None:
        rows, source, digest = hub
        items = [item_from_hub(r) for r in rows]
        return Dataset(tuple(_unique([i for i in items if i.answers])), source, digest)
    path = bundled_dir() / BUNDLED
    return Dataset(tuple(items_from_jsonl(path)), f"bundled:{BUNDLED}{BUNDLED_NOTE}", file_hash(path))


def _unique(items: list[TriviaItem]) -> list[TriviaItem]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise KickError(f"TriviaQA data: question id {item.id!r} occurs twice")
        seen.add(item.id)
    return items


# --- the task -----------------------------------------------------------------------------------


class ICRQA(OneRequestPerItem):
    family = "icrqa"
    version = "1"
    metric = "exact_match"
    higher_is_better = True
    floor = 0.0
    score_range = (0.0, 1.0)  # every item scores within it (the sequential gate bets on that)

    def __init__(self, variant: str):
        if variant not in VARIANTS:
            raise ValueError(f"icrqa variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.name = f"icrqa:{variant}"

    def load(self, settings: Settings) -> Dataset:
        return load_items(settings)

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list[TriviaItem], list[TriviaItem]]:
        """Shots and the evaluated subset are drawn with the family's name, so both variants get the same ids;
        kick: the first ``--kick-limit`` rows in order (LLM-KICK: ``range(0, num_examples)``)."""
        return split_shots(
            dataset.examples, settings, self.family, "the TriviaQA data", first=settings.protocol == "kick"
        )

    def prompt(self, item: TriviaItem, shots: Sequence[TriviaItem] = ()) -> str:
        header = OPEN_HEADER if self.variant == "open" else CLOSED_HEADER
        end = header + "".join(SHOT.format(question=s.question, answer=s.answers[0]) for s in shots)
        end += QUESTION.format(question=item.question)
        if self.variant == "closed":
            return end.strip()
        return PASSAGE.format(context=item.context[:CONTEXT_CHARS], end=end).strip()

    def requests(self, items, shots, settings: Settings) -> list[GenerationRequest]:
        # strict scores the first line only: decoding stops where that line ends (the prediction is unchanged)
        first_line = settings.protocol != "kick"
        return [GenerationRequest(self.prompt(i, shots), MAX_NEW_TOKENS, first_line=first_line) for i in items]

    def prompt_end(self, prompt: str) -> str:
        """The question block a prompt ends with: from the (last) instruction header on (the repo's ``prompt_end``)."""
        header = OPEN_HEADER if self.variant == "open" else CLOSED_HEADER
        return prompt[prompt.rfind(header) :]

    def score(self, item: TriviaItem, request: GenerationRequest, output: str, settings: Settings) -> float:
        if settings.protocol == "kick":
            answer = kick_prediction(request.prompt, self.prompt_end(request.prompt), output)
            return float(containment(answer, item.truths))
        return float(exact_match(prediction(output), item.truths))

    def details(self, items, scores, outputs) -> dict[str, float]:
        if not items:
            return {}
        answers = [prediction(o) for o in outputs]
        n = len(items)
        return {
            "exact_match": sum(exact_match(a, i.truths) for a, i in zip(answers, items)) / n,
            "containment": sum(containment(a, i.truths) for a, i in zip(answers, items)) / n,
            "f1": sum(f1(a, i.truths) for a, i in zip(answers, items)) / n,
        }

    def template_hash(self, settings: Settings) -> str:
        scoring = (
            "kick:split-on-prompt-end:first-line:containment"
            if settings.protocol == "kick"
            else "strict:first-line:exact_match"
        )
        return text_hash(
            self.variant,
            CLOSED_HEADER,
            OPEN_HEADER,
            QUESTION,
            SHOT,
            PASSAGE,
            str(CONTEXT_CHARS),
            f"greedy:{MAX_NEW_TOKENS}",
            "normalize:triviaqa-official",
            scoring,
        )
