"""The judge prompts, filled in from bundled files kept beside their provenance (fixtures/*/SOURCES.md).

Two protocols, one per ``--kick-protocol``:

``kick`` — LLM-KICK's own pairwise GPT-4 prompts, verbatim (VITA-Group/llm-kick @ 70f98d7,
``*/gpt4_judge.py`` with ``json_utils/prompt.jsonl`` / ``table/prompt.jsonl``). The model's answer is
"Assistant 2" and the reference answer "Assistant 1", as in the repo; pytest-kick also asks the swapped
order and averages the model's two scores (the repo asked one order only).
- summaries: the reference is the story's highlights (the repo's GPT-3.5 summaries are not in it); the
  judge gives four lines of two scores (coherence, consistency, fluency, relevance); the model's score
  is the mean of its four. The question is LLM-KICK's prompt, verbatim. Temperature 0.1, 1024 tokens.
- instruction following (Vicuna-bench): the reference is GPT-3.5-turbo's answer; the prompt is chosen
  by the question's category as ``gen_prompt`` does: ``coding`` and ``math`` have their own, every other
  category gets the general one. Temperature 0.2, 1024 tokens.

``strict`` — MT-Bench single-answer grading (lm-sys/FastChat, ``llm_judge``): ``single-v1``, or
``single-math-v1`` with the GPT-4 reference for the categories FastChat grades against a reference
(math, reasoning, coding) when the item has one; the second turn of a two-turn question is graded with
the ``-multi-turn`` form, and the item score is the mean of its turns' ratings (MT-Bench's score
averages turn 1 and turn 2 ratings). Temperature 0, 2048 tokens. Summaries are graded with
``single-v1`` on the prompt the model saw (cut before ``@highlight``). Vicuna-bench has no GPT-4
reference answers bundled, so all its questions get ``single-v1``. MT-Bench has no LLM-KICK
counterpart (LLM-KICK asked the single-turn Vicuna questions only), so it is graded the ``strict`` way
under both protocols.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick import tasks
from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash

KICK_SUMMARY_PROMPTS = "cnn_dailymail/llmkick_judge_prompt.jsonl"
KICK_SUMMARY_REVIEWERS = "cnn_dailymail/llmkick_judge_reviewer.jsonl"
KICK_INSTRUCTION_PROMPTS = "mt_bench/llmkick_judge_prompt.jsonl"
KICK_INSTRUCTION_REVIEWERS = "mt_bench/llmkick_judge_reviewer.jsonl"
MTBENCH_PROMPTS = "mt_bench/fastchat_judge_prompts.jsonl"
FILES = (
    KICK_SUMMARY_PROMPTS,
    KICK_SUMMARY_REVIEWERS,
    KICK_INSTRUCTION_PROMPTS,
    KICK_INSTRUCTION_REVIEWERS,
    MTBENCH_PROMPTS,
)
NEED_REF_CATS = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS (without arena-hard-200)
SUMMARY_METRICS = ("coherence", "consistency", "fluency", "relevance")
HIGHLIGHT = "@highlight"


@dataclass(frozen=True)
class Decoding:
    temperature: float
    max_tokens: int


KICK_SUMMARY_DECODING = Decoding(0.1, 1024)  # in-context_summarization/gpt4_judge.py
KICK_INSTRUCTION_DECODING = Decoding(0.2, 1024)  # mt_conversation/gpt4_judge.py
STRICT_DECODING = Decoding(0.0, 2048)  # fastchat/llm_judge/common.py, run_judge_single


# pytest-kick's own words, sent only after a reply without readable scores (see Ask.again)
REMINDERS = {
    "pair_first_line": "Your reply does not start with the scores. Please output a single line containing only "
    "two values indicating the scores for Assistant 1 and 2, respectively, separated by a space; "
    "then your explanation.",
    "pair_tuple": "Your reply does not end with the scores. Please finish with a Python tuple containing two "
    "numerical scores for Assistant 1 and Assistant 2, ranging from 1 to 10, respectively.",
    "pair_lines": "Your reply does not start with the scores. Please first output four lines (coherence, "
    "consistency, fluency, relevance) each containing only two values, the scores for Assistant 1 "
    "and 2, separated by a space; then your explanation.",
    "rating": "Your reply has no rating. Please rate the response on a scale of 1 to 10 by strictly following "
    'this format: "[[rating]]", for example: "Rating: [[5]]".',
}


@dataclass(frozen=True)
class Ask:
    """One judgment to obtain: the judge's messages, its decoding, and how to read the reply."""

    system: str
    user: str
    decoding: Decoding
    reader: str  # a parse.py reader: pair_first_line | pair_tuple | pair_lines | rating
    template: str  # which prompt: "llmkick-math", "single-v1-multi-turn", ...
    model_slot: int = 0  # pairwise: the judged model is Assistant 1 or 2; 0 for single-answer grading
    turn: int = 1

    @property
    def messages(self) -> tuple[tuple[str, str], ...]:
        return (("system", self.system), ("user", self.user))

    def again(self, unreadable: str) -> tuple[tuple[str, str], ...]:
        """The conversation that asks again after an unreadable reply: that reply, then a reminder of the
        format (a greedy or temperature-0 judge would repeat itself if asked the same question)."""
        return self.messages + (("assistant", unreadable), ("user", REMINDERS[self.reader]))


def bundled_dir() -> Path:
    spec = importlib.util.find_spec("pytest_kick.data")
    if spec is None or not spec.submodule_search_locations:
        raise KickError("the bundled data (package pytest_kick.data) is not installed; reinstall pytest-kick")
    return Path(list(spec.submodule_search_locations)[0])


def read_records(name: str) -> list[dict]:
    path = bundled_dir() / name
    try:
        text = path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise KickError(f"judge prompt file {path} is missing or damaged ({err}); reinstall pytest-kick") from None


def prompts_hash() -> str:
    """The content of every bundled judge prompt file (enters the scorer's fingerprint)."""
    root = bundled_dir()
    return text_hash(*(file_hash(root / name) for name in FILES))


def _kick_prompt(prompts: list[dict], reviewers: list[dict], category: str) -> dict:
    """LLM-KICK's ``gen_prompt``: the first reviewer of the category, else the first reviewer."""
    index = next((k for k, r in enumerate(reviewers) if r["category"] == category), 0)
    prompt = prompts[reviewers[index]["prompt_id"] - 1]
    if prompt["prompt_id"] != reviewers[index]["prompt_id"]:
        raise KickError("bundled LLM-KICK judge prompts are out of order; reinstall pytest-kick")
    return prompt


def _pairwise(
    prompt: dict,
    question: str,
    reference: str,
    answer: str,
    decoding: Decoding,
    reader: str,
    template: str,
    turn: int = 1,
) -> list[Ask]:
    """The two orders: reference as Assistant 1 (LLM-KICK's order), then the model as Assistant 1."""
    asks = []
    for slot, (first, second) in ((2, (reference, answer)), (1, (answer, reference))):
        user = prompt["prompt_template"].format(
            question=question, answer_1=first, answer_2=second, **prompt["defaults"]
        )
        asks.append(Ask(prompt["system_prompt"], user, decoding, reader, template, slot, turn))
    return asks


def strip_highlights(prompt: str) -> str:
    """A summarization prompt as the ``strict`` protocol shows it to the model: cut before ``@highlight``."""
    cut = prompt.find(HIGHLIGHT)
    return (prompt if cut == -1 else prompt[:cut]).rstrip()


def _turns(item) -> tuple[str, ...]:
    turns = getattr(item, "turns", None)
    if turns:
        return tuple(turns)
    return (strip_highlights(item.prompt),) if hasattr(item, "prompt") else (item.question,)


def _reference(item) -> str:
    references = tuple(getattr(item, "references", ()) or ())
    if not references or not str(references[0]).strip():
        raise KickError(f"item {item.id!r} has no reference answer; the kick judge compares against one")
    return str(references[0])


class KickSummary:
    """LLM-KICK's summary judge: the model's summary against the highlights, both orders."""

    protocol = "kick"
    needs_reference = True
    pairwise = True

    def __init__(self):
        self.prompts = read_records(KICK_SUMMARY_PROMPTS)
        self.reviewers = read_records(KICK_SUMMARY_REVIEWERS)

    def asks(self, item, replies: Sequence[str]) -> list[Ask]:
        prompt = _kick_prompt(self.prompts, self.reviewers, getattr(item, "bucket", ""))
        question = getattr(item, "prompt", None) or item.question  # LLM-KICK's question text, verbatim
        return _pairwise(
            prompt, question, _reference(item), _first(replies), KICK_SUMMARY_DECODING, "pair_lines", "llmkick-summary"
        )


class KickInstruction:
    """LLM-KICK's instruction-following judge: general / coding / math by category, both orders."""

    protocol = "kick"
    needs_reference = True
    pairwise = True

    def __init__(self):
        self.prompts = read_records(KICK_INSTRUCTION_PROMPTS)
        self.reviewers = read_records(KICK_INSTRUCTION_REVIEWERS)

    def asks(self, item, replies: Sequence[str]) -> list[Ask]:
        turns = _turns(item)
        if len(turns) != 1:
            raise KickError(f"item {item.id!r} has {len(turns)} turns; LLM-KICK's judge grades single-turn questions")
        category = str(getattr(item, "category", ""))
        prompt = _kick_prompt(self.prompts, self.reviewers, category)
        kind = prompt["category"]  # general | coding | math
        reader = "pair_tuple" if kind == "math" else "pair_first_line"
        return _pairwise(
            prompt, turns[0], _reference(item), _first(replies), KICK_INSTRUCTION_DECODING, reader, f"llmkick-{kind}"
        )


class MTBenchSingle:
    """MT-Bench single-answer grading, one ask per turn (turn 2 sees the whole conversation)."""

    protocol = "strict"
    needs_reference = False
    pairwise = False

    def __init__(self):
        self.prompts = {p["name"]: p for p in read_records(MTBENCH_PROMPTS)}

    def asks(self, item, replies: Sequence[str]) -> list[Ask]:
        turns = _turns(item)
        if len(turns) > 2:
            raise KickError(f"item {item.id!r} has {len(turns)} turns; MT-Bench grading covers one or two")
        answers = list(replies)[: len(turns)] + [""] * (len(turns) - len(replies))
        references = tuple(getattr(item, "references", ()) or ())
        with_ref = str(getattr(item, "category", "")) in NEED_REF_CATS and len(references) >= len(turns)
        fields = {f"ref_answer_{k}": r for k, r in enumerate(references[:2], 1)} if with_ref else {}
        asks = []
        for turn in range(1, len(turns) + 1):
            name = ("single-math-v1" if with_ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
            prompt = self.prompts[name]
            if turn == 1:
                user = prompt["prompt_template"].format(question=turns[0], answer=answers[0], **fields)
            else:
                user = prompt["prompt_template"].format(
                    question_1=turns[0], question_2=turns[1], answer_1=answers[0], answer_2=answers[1], **fields
                )
            asks.append(Ask(prompt["system_prompt"], user, STRICT_DECODING, "rating", name, 0, turn))
        return asks


def _first(replies: Sequence[str]) -> str:
    replies = list(replies)
    return replies[0] if replies else ""


FORMS = {"kick-summary": KickSummary, "kick-instruction": KickInstruction, "mtbench-single": MTBenchSingle}


def family_for(task_family: str, task_variant: str, protocol: str):
    """The judge protocol for a task under ``protocol`` (kick | strict): the form the registered task names in its
    ``judge_forms`` (tasks/summarization.py, tasks/instruction.py), one of FORMS."""
    if protocol not in ("kick", "strict"):
        raise KickError(f"unknown protocol {protocol!r}; the judge knows kick and strict")
    name = task_family if task_variant in (None, "", task_family) else f"{task_family}:{task_variant}"
    forms = getattr(tasks.TASKS.get(name), "judge_forms", None)
    if not forms:
        judged = sorted({t.family for t in tasks.TASKS.values() if getattr(t, "judge_forms", None)})
        raise KickError(f"task {task_family!r} is not scored by a judge; judges score {' and '.join(judged)}")
    if forms.get(protocol) not in FORMS:
        raise KickError(f"task {name}: judge form {forms.get(protocol)!r} is not one of {', '.join(FORMS)}")
    return FORMS[forms[protocol]]()
