"""Instruction following (LLM-KICK, section "Instruction Following": Vicuna-bench, MT-Bench).

Variants:
- ``instruction:vicuna``: the 80 Vicuna-bench questions LLM-KICK asked (VITA-Group/llm-kick,
  mt_conversation/table/question.jsonl), single turn. LLM-KICK had GPT-4 compare each answer with
  GPT-3.5-turbo's (mt_conversation/answer.jsonl, bundled); offline, the reply is scored by ROUGE-L
  against that GPT-3.5 answer (metric ``rougeL_vs_gpt35``). A judge grading the ``strict`` way (MT-Bench
  single-answer grading) sees FastChat's GPT-4 reference answers instead (``strict_references``: the 7
  coding and 3 math questions, FastChat's ``vicuna_bench/reference_answer/gpt-4.jsonl``, bundled) and no
  reference for the others, as FastChat's judge does; the ``kick`` judge compares with GPT-3.5's answer.
- ``instruction:mtbench``: MT-Bench's 80 two-turn questions (lm-sys/FastChat, llm_judge/data/mt_bench),
  kept as a conversation: the model answers turn 1, then turn 2 with its own first answer in the history
  (two rounds of generation requests: ``evaluate``). Offline, each turn's reply is scored by ROUGE-L against the GPT-4
  reference answer for that turn and the item score is the mean of the two turns (metric
  ``rougeL_vs_gpt4``). FastChat has GPT-4 references only for the 30 math, reasoning and coding
  questions; a reference-based scorer cannot score the other 50, so the variant evaluates those 30
  (a judge scorer with ``needs_reference = False`` gets all 80).

Prompting: each user turn (and earlier replies) through the model's chat template; a model without one
gets FastChat's Vicuna v1.1 conversation prompt, as LLM-KICK built it with ``get_conversation_template``
(``"{system} USER: {q} ASSISTANT:"``, earlier replies closed by ``</s>``). Decoding is greedy, at most
MAX_NEW_TOKENS = 256 new tokens per turn (LLM-KICK and FastChat: 1024, sampled at temperature 0.7;
capped for CPU runs, the cap is part of the baseline key). Zero-shot; the protocol (strict/kick) does
not change these tasks. An LLM judge (``--kick-judge``) replaces the ROUGE scorer through
tasks/scorers.py: its rating is the item score, 1 (the floor) to 10; an item it failed on scores NaN.

Outputs: a single-turn reply as is; a conversation as ``"[turn 1]\\n{reply}\\n\\n[turn 2]\\n{reply}"`` (any
``[turn N]`` inside a reply is written ``[turn-N]``, so the text splits back into replies exactly).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, read_jsonl, subset
from pytest_kick.tasks.scorers import RougeScorer, Scorer, mean_figures, prepare_judgments

# FastChat's vicuna_v1.1 conversation template (lm-sys/FastChat, fastchat/conversation.py), the one
# LLM-KICK's get_conversation_template("lmsys/vicuna-7b-v1.3") returned: sep " ", sep2 "</s>".
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
MAX_NEW_TOKENS = 256
VICUNA_QUESTIONS = "mt_bench/llmkick_conversation_questions.jsonl"
VICUNA_REFERENCES = "mt_bench/llmkick_gpt-3.5-turbo_reference_answers.jsonl"
VICUNA_GPT4_REFERENCES = "mt_bench/fastchat_vicuna_gpt-4_reference_answers.jsonl"
MTBENCH_QUESTIONS = "mt_bench/mt_bench_questions.jsonl"
VARIANTS = {"vicuna": "gpt35", "mtbench": "gpt4"}  # variant -> whose reference answers the scorer uses
_TURN = re.compile(r"\[turn (\d+)\]")
_SPLIT = re.compile(r"(?:^|\n\n)\[turn \d+\]\n")


def vicuna_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """FastChat's Vicuna v1.1 prompt for (role, content) turns, ending with the assistant's cue."""
    text = VICUNA_SYSTEM + " "
    for role, content in messages:
        text += f"USER: {content} " if role == "user" else f"ASSISTANT: {content}</s>"
    return text + "ASSISTANT:"


def render(replies: Sequence[str]) -> str:
    """The output text of an item: the reply of a single turn, or the labelled replies of a conversation."""
    if len(replies) == 1:
        return replies[0]
    safe = [_TURN.sub(r"[turn-\1]", r) for r in replies]
    return "\n\n".join(f"[turn {k}]\n{r}" for k, r in enumerate(safe, 1))


def parse(output: str, turns: int) -> tuple[str, ...]:
    """The replies in an output written by ``render`` (stripped); missing turns are empty."""
    if turns == 1:
        return (output.strip(),)
    parts = [p.strip() for p in _SPLIT.split(output)[1:]] if output.startswith("[turn 1]\n") else [output.strip()]
    parts = parts[:turns]
    return tuple(parts + [""] * (turns - len(parts)))


@dataclass(frozen=True)
class Conversation:
    id: str
    question: str  # the user turns, for reports
    answers: tuple[str, ...]  # the reference replies (= references), for reports
    turns: tuple[str, ...]  # the user turns
    references: tuple[str, ...]  # one reference reply per turn, () when there is none
    category: str
    strict_references: tuple[str, ...] = ()  # the GPT-4 reference per turn a strict judge grades against, or ()


def load_gpt4_references(path) -> dict:
    """{question_id: (GPT-4's answer per turn)} from FastChat's reference-answer file."""
    found = {}
    for record in read_jsonl(path, required=("question_id", "choices")):
        choices = record["choices"]
        turns = (
            choices[0].get("turns") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        )
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise KickError(f"{path}: question {record['question_id']!r}: choices[0].turns must hold the answer turns")
        found[record["question_id"]] = tuple(turns)
    return found


def load_vicuna(root) -> tuple[list[Conversation], list]:
    questions_path, answers_path = root / VICUNA_QUESTIONS, root / VICUNA_REFERENCES
    gpt4_path = root / VICUNA_GPT4_REFERENCES
    questions = read_jsonl(questions_path, required=("question_id", "text", "category"))
    references = {}
    for record in read_jsonl(answers_path, required=("question_id", "text")):
        references[record["question_id"]] = record["text"]
    gpt4 = load_gpt4_references(gpt4_path)
    items = []
    for q in questions:
        if not isinstance(q["text"], str) or not q["text"].strip():
            raise KickError(f"{questions_path}: question {q['question_id']!r} has no text")
        ref = references.get(q["question_id"])
        refs = (ref,) if isinstance(ref, str) and ref.strip() else ()
        strict = gpt4.get(q["question_id"], ())[:1]
        items.append(
            Conversation(
                f"vicuna_bench/{q['question_id']}", q["text"], refs, (q["text"],), refs, str(q["category"]), strict
            )
        )
    return items, [questions_path, answers_path, gpt4_path]


def load_mtbench(root) -> tuple[list[Conversation], list]:
    path = root / MTBENCH_QUESTIONS
    items = []
    for q in read_jsonl(path, required=("question_id", "category", "turns")):
        turns = q["turns"]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise KickError(f"{path}: question {q['question_id']!r}: turns must be a non-empty list of strings")
        refs = q.get("reference_gpt4") or ()
        if refs and (len(refs) != len(turns) or not all(isinstance(r, str) for r in refs)):
            raise KickError(f"{path}: question {q['question_id']!r}: reference_gpt4 must hold one string per turn")
        question = "\n\n".join(f"[turn {k}] {t}" for k, t in enumerate(turns, 1))
        items.append(
            Conversation(
                f"mt_bench/{q['question_id']}",
                question,
                tuple(refs),
                tuple(turns),
                tuple(refs),
                str(q["category"]),
                tuple(refs),
            )
        )
    return items, [path]


class Instruction:
    family = "instruction"
    version = "1"
    higher_is_better = True

    def __init__(self, variant: str, scorer: Scorer | None = None, max_new_tokens: int = MAX_NEW_TOKENS):
        if variant not in VARIANTS:
            raise ValueError(f"instruction variant must be one of {tuple(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.name = f"instruction:{variant}"
        # the judge's prompt per --kick-protocol (judge/protocols.py FORMS): LLM-KICK judged the Vicuna questions
        # pairwise; MT-Bench has no LLM-KICK counterpart and is graded single-answer under both protocols
        self.judge_forms = {
            "kick": "kick-instruction" if variant == "vicuna" else "mtbench-single",
            "strict": "mtbench-single",
        }
        self.scorer: Scorer = scorer or RougeScorer("rougeL")
        reference = f"_vs_{VARIANTS[variant]}" if self.scorer.needs_reference else ""
        self.metric = self.scorer.name + reference
        self.floor = self.scorer.floor
        self.max_new_tokens = max_new_tokens

    def load(self, settings: Settings) -> Dataset:
        """Always the bundled question sets (complete as used upstream; --kick-data-dir is not read)."""
        root = bundled_dir()
        items, files = load_vicuna(root) if self.variant == "vicuna" else load_mtbench(root)
        source = "bundled:" + ",".join(str(f.relative_to(root)) for f in files)
        return Dataset(tuple(items), source, text_hash(*(file_hash(f) for f in files)))

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list, list[Conversation]]:
        """Zero-shot; under a reference-based scorer, only the questions that have references."""
        items = [i for i in dataset.examples if i.references or not self.scorer.needs_reference]
        if not items:
            raise KickError(f"{self.name}: no question has a reference answer for the {self.scorer.name} scorer")
        return [], subset(items, settings.limit, settings.seed, self.name)

    def judged(self, item: Conversation) -> Conversation:
        """The item as the scorer sees it: under a ``strict`` judge, with the GPT-4 references FastChat grades
        against (none where FastChat has none), not the answers the ``kick`` judge and ROUGE compare with."""
        if getattr(self.scorer, "protocol", None) != "strict" or item.references == item.strict_references:
            return item
        return dataclasses.replace(item, references=item.strict_references)

    def request(self, item: Conversation, replies: Sequence[str] = ()) -> GenerationRequest:
        """The request for the next turn of ``item``, after the model's earlier ``replies``."""
        messages: list[tuple[str, str]] = []
        for turn, reply in zip(item.turns, replies):
            messages += [("user", turn), ("assistant", reply)]
        messages.append(("user", item.turns[len(replies)]))
        return GenerationRequest(vicuna_prompt(messages), self.max_new_tokens, messages=tuple(messages))

    def requests(self, items, shots, settings: Settings) -> list[GenerationRequest]:
        """The first turn of every item (a conversation's later turns come in later rounds of ``evaluate``)."""
        return [self.request(i) for i in items]

    def evaluate(self, items, shots, settings: Settings, run) -> tuple[list[float], list[str]]:
        """Generate turn by turn (one round of requests per turn), each turn seeing the model's earlier replies."""
        replies: list[list[str]] = [[] for _ in items]
        for turn in range(max((len(i.turns) for i in items), default=0)):
            active = [k for k, item in enumerate(items) if len(item.turns) > turn]
            for k, output in zip(active, run([self.request(items[k], replies[k]) for k in active])):
                replies[k].append(output.strip())
        outputs = [render(r) for r in replies]
        prepare_judgments(self.scorer, [self.judged(i) for i in items], replies)
        return [self.score(i, None, o, settings) for i, o in zip(items, outputs)], outputs

    def score(self, item: Conversation, request, output: str, settings: Settings) -> float:
        return self.scorer.score(self.judged(item), parse(output, len(item.turns)))

    def score_outputs(self, items, outputs) -> list[float]:
        """Scores of stored outputs (a baseline's), judged as one batch."""
        items = [self.judged(i) for i in items]
        replies = [parse(o, len(i.turns)) for i, o in zip(items, outputs)]
        prepare_judgments(self.scorer, items, replies)
        return [self.scorer.score(i, r) for i, r in zip(items, replies)]

    def explain(self, item: Conversation, output: str) -> str | None:
        """The judge's explanation of its score for ``output`` (None under ROUGE): the flip report shows it."""
        explanation = getattr(self.scorer, "explanation", None)
        return None if explanation is None else explanation(self.judged(item), parse(output, len(item.turns)))

    def details(self, items, scores, outputs) -> dict[str, float]:
        if getattr(self.scorer, "figures", None) is None:
            return {}
        items = [self.judged(i) for i in items]
        replies = [parse(o, len(i.turns)) for i, o in zip(items, outputs)]
        prepare_judgments(self.scorer, items, replies)
        return mean_figures(self.scorer, items, replies)

    def template_hash(self, settings: Settings) -> str:
        return text_hash(
            self.variant,
            "chat-template|vicuna_v1.1",
            VICUNA_SYSTEM,
            "history:own-replies",
            "render:[turn N]",
            f"greedy:{self.max_new_tokens}",
            self.scorer.fingerprint(),
        )
