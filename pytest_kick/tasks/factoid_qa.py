"""Factoid QA on FreebaseQA (LLM-KICK, section "Factoid-based QA").

Prompt and scoring of the LLM-KICK repo (VITA-Group/llm-kick, factoid_qa/main_freebase.py):
prompt ``"Please give answer to this question: {q}\\nThe answer is "``, greedy decoding up to
``max_length = 3 x prompt length`` tokens, and an item counts as correct when any answer (lower-cased,
spaces removed) is a substring of the decoded prompt + output. That is protocol ``kick``; its quirk is
that the prompt itself is searched, so an answer that appears in the question scores. The repository never
had in-context examples; with ``--kick-shots`` only the item's own prompt is searched, never the shots (whose
answers would otherwise score an empty output).

Protocol ``strict`` (default) scores only the first line of the generated continuation, normalised
(case, punctuation, articles), and asks for some answer to occur in it as whole words. It prompts a
chat model through its chat template (the question as the user turn, in-context examples as earlier
turns answered "The answer is {a}."), and a model without one with the LLM-KICK prompt minus its
trailing space (a prompt ending in a bare space splits the answer's first token unnaturally).

Protocol ``kick`` is the repo's run (docs/fidelity.md): no cap on the 2 x prompt-tokens budget; with the
official files, ``FreebaseQA-train.json`` and the first answer of the first parse only; the first
``--kick-limit`` questions in file order (no seeded draw). The repo's ``--num_examples N`` evaluates N + 1
questions and divides the hits by N; here n questions are evaluated and the figure is hits / n: a paired
gate's relative drop is the same either way, and ``--kick-limit N+1`` times (N+1)/N gives the repo's figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest
from pytest_kick.tasks.base import Dataset, Example, OneRequestPerItem, Settings
from pytest_kick.tasks.data import bundled_dir, read_jsonl, split_shots
from pytest_kick.tasks.normalize import contains_answer

PROMPT = "Please give answer to this question: {question}\nThe answer is "
SHOT = PROMPT + "{answer}\n\n"
STRICT_PROMPT = PROMPT.rstrip(" ")
STRICT_SHOT = STRICT_PROMPT + " {answer}\n\n"
USER_TURN = "Please give answer to this question: {question}"
ASSISTANT_TURN = "The answer is {answer}."
BUNDLED = "freebaseqa/freebaseqa_eval_prerelease_sample.jsonl"
OFFICIAL_FILES = ("FreebaseQA-eval.json", "FreebaseQA-train.json", "FreebaseQA-dev.json")
KICK_FILES = ("FreebaseQA-train.json", "FreebaseQA-eval.json", "FreebaseQA-dev.json")  # the repo reads train
LOCAL_LAYOUT = (
    "FreebaseQA-eval.json (from github.com/kelvin-jiang/FreebaseQA) or freebaseqa/*.jsonl records "
    "with id, question, answers"
)
STRICT_MAX_NEW_TOKENS = 24
# LLM-KICK generates up to max_length = 3 x prompt tokens (its BOS counted), i.e. 2 x prompt tokens of
# continuation, with no other cap: the request's own cap is set out of reach.
KICK_LENGTH_FACTOR = 2
KICK_MAX_NEW_TOKENS = 2**31 - 1


def _answers(value, where: str) -> tuple[str, ...]:
    """A record's answers: a non-empty list of non-empty strings (a bare string would be split into letters,
    and an empty answer is a substring of everything: both would score every output as correct)."""
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a.strip() for a in value):
        raise KickError(f"{where}: answers must be a non-empty list of non-empty strings, got {value!r:.80}")
    return tuple(value)


def _examples_from_jsonl(path: Path) -> list[Example]:
    records = read_jsonl(path, required=("id", "question", "answers"))
    return [Example(r["id"], r["question"], _answers(r["answers"], f"{path} record {r['id']!r}")) for r in records]


def _examples_from_official(path: Path, first_only: bool = False) -> list[Example]:
    """The released FreebaseQA JSON: {"Questions": [{"Question-ID", "RawQuestion", "Parses": [...]}]}.

    Answers: the names of every answer of every parse, or with ``first_only`` those of the first answer of
    the first parse (LLM-KICK's freebase_qa.py: ``Parses[0]["Answers"][0]["AnswersName"]``)."""
    try:
        questions = json.loads(path.read_text(encoding="utf-8"))["Questions"]
        examples = []
        for q in questions:
            names = []
            parses = q["Parses"][:1] if first_only else q["Parses"]
            for parse in parses:
                for answer in parse["Answers"][:1] if first_only else parse["Answers"]:
                    names.extend(n for n in answer["AnswersName"] if n not in names)
            names = [n for n in names if isinstance(n, str) and n.strip()]
            if names:  # a question whose parses name no answer cannot be scored (the repo stops on it)
                examples.append(Example(q["Question-ID"], q["RawQuestion"], tuple(names)))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise KickError(f"{path}: not a FreebaseQA JSON file ({type(err).__name__}: {err})") from None
    return examples


class FactoidQA(OneRequestPerItem):
    name = "factoid_qa"
    family = "factoid_qa"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.0
    score_range = (0.0, 1.0)  # every item scores within it (the sequential gate bets on that)

    def load(self, settings: Settings) -> Dataset:
        if settings.data_dir is not None:
            local = self._load_local(Path(settings.data_dir), settings.protocol == "kick")
            if local is not None:
                return local
        path = bundled_dir() / BUNDLED
        return Dataset(tuple(_examples_from_jsonl(path)), f"bundled:{BUNDLED}", file_hash(path))

    def _load_local(self, root: Path, kick: bool = False) -> Dataset | None:
        """FreebaseQA from --kick-data-dir, or None when it holds none (the bundled sample is used then).
        ``kick``: the repo's file (train) and answer set (first answer of the first parse)."""
        for folder in (root, root / "freebaseqa"):
            for name in KICK_FILES if kick else OFFICIAL_FILES:
                if (folder / name).is_file():
                    path = folder / name
                    source = f"local:{path}" + (" (first answer of first parse)" if kick else "")
                    return Dataset(tuple(_examples_from_official(path, kick)), source, file_hash(path))
        jsonl = sorted((root / "freebaseqa").glob("*.jsonl"))
        if not jsonl:
            return None
        examples = [e for path in jsonl for e in _examples_from_jsonl(path)]
        digest = text_hash(*(file_hash(p) for p in jsonl))
        return Dataset(tuple(examples), "local:" + ",".join(str(p) for p in jsonl), digest)

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list[Example], list[Example]]:
        """kick: the first ``--kick-limit`` questions in file order (after any seeded shots); strict: a seeded
        subset."""
        return split_shots(dataset.examples, settings, self.name, first=settings.protocol == "kick")

    def prompt(self, item: Example, shots: Sequence[Example], protocol: str = "kick") -> str:
        prompt, shot = (PROMPT, SHOT) if protocol == "kick" else (STRICT_PROMPT, STRICT_SHOT)
        prefix = "".join(shot.format(question=s.question, answer=s.answers[0]) for s in shots)
        return prefix + prompt.format(question=item.question)

    def messages(self, item: Example, shots: Sequence[Example]) -> tuple[tuple[str, str], ...]:
        turns = []
        for s in shots:
            turns += [
                ("user", USER_TURN.format(question=s.question)),
                ("assistant", ASSISTANT_TURN.format(answer=display(s.answers[0]))),
            ]
        return (*turns, ("user", USER_TURN.format(question=item.question)))

    def requests(self, items, shots, settings: Settings) -> list[GenerationRequest]:
        if settings.protocol == "kick":
            return [
                GenerationRequest(self.prompt(i, shots), KICK_MAX_NEW_TOKENS, length_factor=KICK_LENGTH_FACTOR)
                for i in items
            ]
        return [
            GenerationRequest(
                self.prompt(i, shots, "strict"), STRICT_MAX_NEW_TOKENS, stop=("\n",), messages=self.messages(i, shots)
            )
            for i in items
        ]

    def score(self, item: Example, request: GenerationRequest, output: str, settings: Settings) -> float:
        if settings.protocol == "kick":  # the repository searches its prompt too; with shots, only the item's own
            # (the shots' answers are in the whole prompt: an empty output would score when one matches)
            return float(kick_match(item.answers, PROMPT.format(question=item.question) + output))
        return float(contains_answer(output.split("\n", 1)[0], item.answers))

    def template_hash(self, settings: Settings) -> str:
        decoding = (
            f"kick:{KICK_LENGTH_FACTOR}:uncapped"
            if settings.protocol == "kick"
            else f"strict:{STRICT_MAX_NEW_TOKENS}:\\n"
        )
        return text_hash(
            PROMPT,
            SHOT,
            STRICT_PROMPT,
            STRICT_SHOT,
            USER_TURN,
            ASSISTANT_TURN,
            "display:title",
            decoding,
            "kick-searches:own-prompt",
        )


def display(answer: str) -> str:
    """FreebaseQA stores answers lower-cased; shown that way in examples, a small chat model copies the
    style and answers worse, so strict examples capitalise each word ("stephen harper" -> "Stephen Harper")."""
    return " ".join(word[:1].upper() + word[1:] for word in answer.split(" "))


def kick_match(answers: Sequence[str], decoded: str) -> bool:
    """LLM-KICK's ``validate_response``: any answer, lower-cased with spaces removed, is a substring."""
    haystack = decoded.strip().replace(" ", "").lower()
    return any(a.strip().replace(" ", "").lower() in haystack for a in answers)
