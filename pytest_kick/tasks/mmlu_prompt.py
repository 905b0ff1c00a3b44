"""MMLU prompts: Hendrycks' format (hendrycks/test ``evaluate.py``: gen_prompt, format_example, format_subject, which
LLM-KICK copies), and fitting each question's shots to the model's context (``fit``). Plain functions of their
arguments: nothing is kept between calls (tasks/mmlu.py says what the task does with them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from pytest_kick.tasks.mmlu_data import MMLUItem

HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
QUESTION = "{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
SHOT = QUESTION + " {answer}\n\n"
KICK_PROMPT_TOKENS = 2048  # LLM-KICK main_mmlu.py: shots dropped while the prompt exceeds 2048 tokens
# pandas.read_csv's default missing-value strings: a field equal to one of them is NaN, printed "nan"
PANDAS_NA = frozenset(
    (
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    )
)


def display_subject(subject: str) -> str:
    """Hendrycks' ``format_subject``: every word preceded by a space ("abstract_algebra" -> " abstract algebra")."""
    return " " + subject.replace("_", " ")


def as_pandas(text: str) -> str:
    """A CSV field as LLM-KICK prints it after ``pd.read_csv``: a missing-value string becomes "nan"."""
    return "nan" if text in PANDAS_NA else text


def format_question(item: MMLUItem, with_answer: bool = False, pandas: bool = False) -> str:
    template = SHOT if with_answer else QUESTION
    question, (a, b, c, d) = item.question, item.choices
    if pandas:
        question, a, b, c, d = map(as_pandas, (question, a, b, c, d))
    return template.format(question=question, a=a, b=b, c=c, d=d, answer=item.answers[0])


def format_prefix(subject: str, shots: Sequence[MMLUItem], pandas: bool = False) -> str:
    """The part shared by every question of a subject: header and shots."""
    return HEADER.format(subject=display_subject(subject)) + "".join(format_question(s, True, pandas) for s in shots)


def prompt(item: MMLUItem, shots: Sequence[MMLUItem], protocol: str = "strict") -> str:
    """The question after its subject's header and ``shots``; kick prints missing-value fields as pandas does."""
    pandas = protocol == "kick"
    return format_prefix(item.subject, shots, pandas) + format_question(item, pandas=pandas)


@dataclass(frozen=True)
class Fitted:
    """The prompts a run asks (one per item, in item order) and what fitting them cost: the shots each question
    kept (item id -> shots), the questions too long even without shots (sent as they are, the engine keeps their
    last tokens) and the shots dropped in all."""

    prompts: tuple[str, ...]
    shots_used: Mapping[str, int]
    truncated: int
    shots_dropped: int


def fit(items: Sequence[MMLUItem], dev: Mapping[str, Sequence[MMLUItem]], k_max: int, protocol: str, run) -> Fitted:
    """Each item's prompt with the most shots of its subject's ``dev`` (at most ``k_max``) that fit the model's
    context together with the answer's tokens, shots dropped from the last (Hendrycks, LLM-KICK); all ``k_max`` shots
    when the engine cannot count tokens (``run.max_length``, ``run.token_counts``). A question too long even without
    shots keeps zero shots (the engine then keeps its last tokens). kick: the repo's budget, a prompt of at most
    2048 tokens (the answer's token not counted), or the model's context less that token when smaller."""
    limit = run.max_length
    if protocol == "kick":
        limit, answer = (KICK_PROMPT_TOKENS if not limit else min(KICK_PROMPT_TOKENS, limit - 1)), 0
    probe = run.token_counts(["?\nAnswer:", "?\nAnswer: A"]) if limit else None
    if protocol != "kick":
        answer = 1 if probe is None else probe[1] - probe[0]
    prompts: list[str] = [""] * len(items)
    used = [k_max] * len(items)
    pending = list(range(len(items)))
    for k in range(k_max, -1, -1):
        texts = [prompt(items[i], dev[items[i].subject][:k], protocol) for i in pending]
        counts = run.token_counts(texts) if probe is not None else [0] * len(texts)
        left = []
        for i, text, count in zip(pending, texts, counts):
            if probe is None or k == 0 or count + answer <= limit:
                prompts[i], used[i] = text, k
            else:
                left.append(i)
        pending = left
        if not pending:
            break
    too_long = 0
    if probe is not None:
        too_long = sum(c + answer > limit for c in run.token_counts([p for p, k in zip(prompts, used) if k == 0]))
    return Fitted(tuple(prompts), {item.id: k for item, k in zip(items, used)}, too_long, sum(k_max - k for k in used))
