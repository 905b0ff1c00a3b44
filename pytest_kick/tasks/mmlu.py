"""MMLU (LLM-KICK, section "Multiple-choice QA"): 57 subjects, four options, 5-shot from each subject's dev split.

Prompt: the format of Hendrycks et al.'s evaluation (hendrycks/test ``evaluate.py``), which LLM-KICK copies
verbatim (VITA-Group/llm-kick, ``multiple_choice_qa/main_mmlu.py``)::

    The following are multiple choice questions (with answers) about  abstract algebra.\\n\\n
    {question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer: {letter}\\n\\n      (one block per shot)
    {question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer:

The double space after "about" is theirs: their ``format_subject`` puts a space before every word of the
subject, the first one included. Shots are the first ``k`` rows of the subject's dev split, in file order;
when the prompt and its answer do not fit the model's context (the engine's ``max_length`` and
``token_counts``), shots are dropped from the last one until they do (as both repos do); a question too long
even without shots is sent as is, and the engine keeps its last tokens (and a BOS the tokenizer puts first).
The shots each question used are recorded (``shots_used``). MMLU is plain text: never the chat template.

Protocols:
- ``strict`` (default): four log-likelihood requests per question, context = prompt, continuation = " A" ..
  " D"; the answer is the letter with the highest log-likelihood (Hendrycks' scoring; the first on ties).
- ``kick``: LLM-KICK's way: one generation request for one greedy token after "Answer:", correct when the
  last character of the decoded text equals the gold letter (their ``output[-1:] == label``).

Speed is the engine's business: the local engine answers the four requests of a question with one pass
(their tokens differ only in the last one), runs each subject's header and shots once and reuses their
key/value cache for the subject's questions (found from the tokens, not from this task).

``--kick-limit`` samples questions stratified by subject (``stratified_subset``: one per subject first when
the limit allows, the rest in proportion to subject size), in dataset order, seeded by ``--kick-seed``.

Data, in order: the Hugging Face hub (``cais/mmlu``, config ``all``, test + dev); ``--kick-data-dir``
(Hendrycks' ``data.tar`` layout ``{dev,test}/*_{dev,test}.csv``, directly, under ``data/`` or under
``mmlu/``; or ``mmlu/mmlu_{test,dev}.jsonl`` records); the bundled copy (the full test and dev splits).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows, read_jsonl

LETTERS = ("A", "B", "C", "D")
# Hendrycks / LLM-KICK prompt strings (hendrycks/test evaluate.py: gen_prompt, format_example, format_subject).
HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
QUESTION = "{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
SHOT = QUESTION + " {answer}\n\n"
DEFAULT_SHOTS = 5  # the paper's (and LLM-KICK's --ntrain default) setting
HUB_PATH, HUB_CONFIG = "cais/mmlu", "all"
BUNDLED_TEST, BUNDLED_DEV = "mmlu/mmlu_test.jsonl", "mmlu/mmlu_dev.jsonl"
HENDRYCKS_TAR = "https://people.eecs.berkeley.edu/~hendrycks/data.tar"
# The cached prefix may stop a few tokens short of the shots' end: a tokenizer can merge the final "\n\n"
# differently alone than before a question (SmolLM2 does). More than this many: that question runs in full.
BOUNDARY_SLACK = 4

# The standard category of each subject (hendrycks/test categories.py: subject -> subcategory -> category).
_CATEGORY_SUBJECTS = {
    "STEM": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
        "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
        "high_school_mathematics high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
        "prehistory professional_law world_religions"
    ),
    "social sciences": (
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy"
    ),
    "other": (
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management "
        "marketing medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology"
    ),
}
SUBJECT_CATEGORY = {s: cat for cat, subjects in _CATEGORY_SUBJECTS.items() for s in subjects.split()}
CATEGORIES = tuple(_CATEGORY_SUBJECTS)


@dataclass(frozen=True)
class MMLUItem:
    id: str
    question: str
    answers: tuple[str, ...]  # (gold letter,)
    subject: str
    choices: tuple[str, str, str, str]
    answer_index: int


@dataclass(frozen=True)
class MMLUDataset(Dataset):
    """The test questions (``examples``) and the dev split the shots come from."""

    dev: tuple[MMLUItem, ...] = ()


def _item(item_id: str, subject: str, question, choices, index, where: str) -> MMLUItem:
    if not isinstance(question, str) or not isinstance(subject, str) or not subject:
        raise KickError(f"{where}: question and subject must be strings")
    if not isinstance(choices, (list, tuple)) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        raise KickError(f"{where}: choices must be a list of 4 strings, got {choices!r:.80}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 4:
        raise KickError(f"{where}: the answer must be a letter A-D or an index 0-3, got {index!r:.20}")
    return MMLUItem(item_id, question, (LETTERS[index],), subject, tuple(choices), index)


def _answer_index(value, where: str) -> int:
    if isinstance(value, str) and value.strip() in LETTERS:
        return LETTERS.index(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise KickError(f"{where}: the answer must be a letter A-D or an index 0-3, got {value!r:.20}")


def _items_from_jsonl(path: Path) -> list[MMLUItem]:
    """Records with id, subject, question, choices and answer_index (or answer, a letter): SCHEMA.md's layout."""
    items = []
    for lineno, r in enumerate(read_jsonl(path, required=("id", "subject", "question", "choices")), 1):
        where = f"{path} record {r.get('id', lineno)!r}"
        index = _answer_index(r["answer_index"] if "answer_index" in r else r.get("answer"), where)
        items.append(_item(str(r["id"]), r["subject"], r["question"], r["choices"], index, where))
    return items


def _items_from_csv(path: Path, subject: str, split: str) -> list[MMLUItem]:
    """One Hendrycks CSV: no header, rows question,A,B,C,D,letter (quoted fields may hold newlines)."""
    items = []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for row_number, row in enumerate(csv.reader(handle)):
                where = f"{path}:{row_number + 1}"
                if len(row) != 6:
                    raise KickError(f"{where}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}; "
                                    f"restore the file from {HENDRYCKS_TAR}")
                index = _answer_index(row[5], where)
                items.append(_item(f"mmlu/{split}/{subject}/{row_number}", subject, row[0], row[1:5], index, where))
    except (UnicodeDecodeError, csv.Error) as err:
        raise KickError(f"{path}: not a readable MMLU CSV file ({err}); restore it from {HENDRYCKS_TAR}") from None
    if not items:
        raise KickError(f"{path} holds no questions; restore it from {HENDRYCKS_TAR}")
    return items


def _items_from_hub(rows: list[dict], split: str, where: str) -> list[MMLUItem]:
    items, seen = [], {}
    for row in rows:
        subject = row.get("subject")
        number = seen.get(subject, 0)
        seen[subject] = number + 1
        items.append(_item(f"mmlu/{split}/{subject}/{number}", subject, row.get("question"), row.get("choices"),
                           _answer_index(row.get("answer"), where), f"{where} row {subject}/{number}"))
    return items


def display_subject(subject: str) -> str:
    """Hendrycks' ``format_subject``: every word preceded by a space ("abstract_algebra" -> " abstract algebra")."""
    return " " + subject.replace("_", " ")


def format_question(item: MMLUItem, with_answer: bool = False) -> str:
    template = SHOT if with_answer else QUESTION
    a, b, c, d = item.choices
    return template.format(question=item.question, a=a, b=b, c=c, d=d, answer=item.answers[0])


def format_prefix(subject: str, shots: Sequence[MMLUItem]) -> str:
    """The part shared by every question of a subject: header and shots."""
    return HEADER.format(subject=display_subject(subject)) + "".join(format_question(s, True) for s in shots)


def stratified_subset(items: Sequence[MMLUItem], limit: int | None, seed: int, salt: str) -> list[MMLUItem]:
    """``limit`` items, stratified by subject, in dataset order; all items when limit is None or too large.

    Allocation: with ``limit >= number of subjects``, every subject gets one item and the remaining
    ``limit - subjects`` are shared in proportion to each subject's other items; with fewer, ``limit`` is
    shared in proportion to subject sizes (some subjects get none). Shares are rounded by largest remainder,
    ties broken by a seeded order. Within a subject, the items are a seeded sample. Everything derives from
    ``seed`` and ``salt``: the same arguments give the same subset.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.subject, []).append(index)
    subjects = list(groups)
    order_rng = random.Random(f"{seed}/{salt}/allocation")
    tiebreak = {s: order_rng.random() for s in subjects}
    if limit >= len(subjects):
        base, weights, rest = 1, {s: len(groups[s]) - 1 for s in subjects}, limit - len(subjects)
    else:
        base, weights, rest = 0, {s: len(groups[s]) for s in subjects}, limit
    total = sum(weights.values())
    share = {s: base + (rest * weights[s] // total if total else 0) for s in subjects}
    left = limit - sum(share.values())
    by_remainder = sorted(subjects, key=lambda s: (-(rest * weights[s] % total if total else 0), tiebreak[s]))
    for s in by_remainder[:left]:
        share[s] += 1
    chosen = []
    for s in subjects:
        chosen += random.Random(f"{seed}/{salt}/{s}").sample(groups[s], share[s])
    return [items[i] for i in sorted(chosen)]


LOCAL_LAYOUT = (f"test/*_test.csv and dev/*_dev.csv (Hendrycks' {HENDRYCKS_TAR}, extracted) in it, in data/ or "
                f"in mmlu/, or mmlu/mmlu_test.jsonl + mmlu/mmlu_dev.jsonl")


class MMLU:
    name = "mmlu"
    family = "mmlu"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.25

    def __init__(self):
        self._dev: dict[str, tuple[MMLUItem, ...]] = {}
        self.shots_used: dict[str, int] = {}  # item id -> shots that fitted, from the last evaluate
        self.last_run: dict[str, int] = {}  # the last evaluate: questions too long even without shots, shots dropped

    # --- data ----------------------------------------------------------------------------------

    def load(self, settings: Settings, notify: Callable[[str], None] | None = None) -> MMLUDataset:
        if settings.data_dir is not None:  # an explicit copy wins; a dir without MMLU falls through
            local = self._load_local(Path(settings.data_dir))
            if local is not None:
                return local
        test = hub_rows(HUB_PATH, HUB_CONFIG, "test", notify)
        dev = hub_rows(HUB_PATH, HUB_CONFIG, "dev", notify) if test else None
        if test and dev:
            (test_rows, test_source, test_digest), (dev_rows, dev_source, dev_digest) = test, dev
            return MMLUDataset(
                tuple(_items_from_hub(test_rows, "test", test_source)), f"{test_source}+{dev_source}",
                text_hash(test_digest, dev_digest), tuple(_items_from_hub(dev_rows, "dev", dev_source)),
            )
        root = bundled_dir()
        test_path, dev_path = root / BUNDLED_TEST, root / BUNDLED_DEV
        return MMLUDataset(tuple(_items_from_jsonl(test_path)), f"bundled:{BUNDLED_TEST}+{BUNDLED_DEV}",
                           text_hash(file_hash(test_path), file_hash(dev_path)), tuple(_items_from_jsonl(dev_path)))

    def _load_local(self, root: Path) -> MMLUDataset | None:
        for folder in (root, root / "data", root / "mmlu", root / "mmlu" / "data"):
            if (folder / "test").is_dir() and any((folder / "test").glob("*_test.csv")):
                return self._load_csv(folder)
        test_path, dev_path = root / "mmlu" / "mmlu_test.jsonl", root / "mmlu" / "mmlu_dev.jsonl"
        if test_path.is_file() or dev_path.is_file():
            for path in (test_path, dev_path):
                if not path.is_file():
                    raise KickError(f"--kick-data-dir {root}: {path} is missing; MMLU needs both "
                                    f"mmlu_test.jsonl and mmlu_dev.jsonl (the dev split holds the shots)")
            return MMLUDataset(tuple(_items_from_jsonl(test_path)), f"local:{test_path}+{dev_path}",
                               text_hash(file_hash(test_path), file_hash(dev_path)), tuple(_items_from_jsonl(dev_path)))
        return None

    def _load_csv(self, folder: Path) -> MMLUDataset:
        test_files = sorted((folder / "test").glob("*_test.csv"))
        test, dev, hashes = [], [], []
        for test_file in test_files:
            subject = test_file.name[: -len("_test.csv")]
            dev_file = folder / "dev" / f"{subject}_dev.csv"
            if not dev_file.is_file():
                raise KickError(f"{dev_file} is missing (the shots of {subject} come from it); "
                                f"restore the dev/ folder from {HENDRYCKS_TAR}")
            test += _items_from_csv(test_file, subject, "test")
            dev += _items_from_csv(dev_file, subject, "dev")
            hashes += [file_hash(test_file), file_hash(dev_file)]
        return MMLUDataset(tuple(test), f"local:{folder}/{{test,dev}}/*.csv", text_hash(*hashes), tuple(dev))

    @staticmethod
    def shots_for(settings: Settings) -> int:
        """Shots per question: ``--kick-shots`` when positive, else 5 (the paper's setting; --kick-shots
        defaults to 0, which therefore means "the task's default", not zero-shot, for MMLU)."""
        return settings.shots if settings.shots > 0 else DEFAULT_SHOTS

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list, list[MMLUItem]]:
        """([], items): the shots are per subject (its dev split), kept by the task for ``evaluate``."""
        self._dev = self._group_dev(getattr(dataset, "dev", ()))
        items = list(dataset.examples)
        self._check_shots(items, self._dev, self.shots_for(settings))
        return [], stratified_subset(items, settings.limit, settings.seed, self.name)

    @staticmethod
    def _group_dev(dev: Sequence[MMLUItem]) -> dict[str, tuple[MMLUItem, ...]]:
        groups: dict[str, list[MMLUItem]] = {}
        for item in dev:
            groups.setdefault(item.subject, []).append(item)
        return {s: tuple(v) for s, v in groups.items()}

    @staticmethod
    def _check_shots(items: Sequence[MMLUItem], dev: dict[str, tuple[MMLUItem, ...]], k: int) -> None:
        for subject in dict.fromkeys(i.subject for i in items):
            have = len(dev.get(subject, ()))
            if have == 0:
                raise KickError(f"MMLU: no dev questions for {subject}: the data lacks its dev split, where the shots "
                                f"come from")
            if have < k:
                raise KickError(f"MMLU: {k} shots asked but the dev split of {subject} has {have} questions "
                                f"(MMLU's has 5 per subject); use --kick-shots 1..{have}")

    # --- prompts -------------------------------------------------------------------------------

    def prompt(self, item: MMLUItem, shots: Sequence[MMLUItem]) -> str:
        return format_prefix(item.subject, shots) + format_question(item)

    @staticmethod
    def item_requests(prompt: str, protocol: str) -> list[LoglikelihoodRequest] | list[GenerationRequest]:
        """strict: the log-likelihood of each letter (" A" .. " D") after the prompt; kick: one greedy token."""
        if protocol == "kick":
            return [GenerationRequest(prompt, 1)]
        return [LoglikelihoodRequest(prompt, " " + letter) for letter in LETTERS]

    def requests(self, items, shots, settings: Settings) -> list:
        """The requests of every item with all shots, in item order (``evaluate`` fits them to the model)."""
        dev = self._group_dev(shots) if shots else self._dev
        k = self.shots_for(settings)
        return [r for i in items for r in self.item_requests(self.prompt(i, dev.get(i.subject, ())[:k]),
                                                              settings.protocol)]

    def score(self, item: MMLUItem, request, output: str, settings: Settings) -> float:
        """strict: ``output`` is the predicted letter; kick: the decoded greedy token, scored on its last character."""
        if settings.protocol == "kick":
            return float(output[-1:] == item.answers[0])
        return float(output == item.answers[0])

    def template_hash(self, settings: Settings) -> str:
        readout = ("kick:greedy-1-token:last-char" if settings.protocol == "kick"
                   else "strict:next-token-logits:' A'..' D'")
        return text_hash(HEADER, QUESTION, SHOT, "subject:leading-space", f"shots:{self.shots_for(settings)}",
                         "fit:drop-last-shots,context-1,left-truncate", readout)

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, items: Sequence[MMLUItem], shots: Sequence[MMLUItem], settings: Settings,
                 run) -> tuple[list[float], list[str]]:
        """(scores, outputs): outputs are the predicted letters (strict) or decoded greedy tokens (kick)."""
        dev = self._group_dev(shots) if shots else self._dev
        k_max = self.shots_for(settings)
        self._check_shots(items, dev, k_max)
        prompts = self.fit(items, dev, k_max, settings.protocol, run)
        per_item = [self.item_requests(p, settings.protocol) for p in prompts]
        answers = run([r for requests in per_item for r in requests])
        outputs = []
        for n in range(len(items)):
            if settings.protocol == "kick":
                outputs.append(answers[n])
            else:
                loglikelihoods = [ll for ll, _ in answers[4 * n:4 * n + 4]]
                outputs.append(LETTERS[max(range(4), key=lambda c: loglikelihoods[c])])  # the first best on ties
        return [self.score(i, None, o, settings) for i, o in zip(items, outputs)], outputs

    def fit(self, items: Sequence[MMLUItem], dev: dict, k_max: int, protocol: str, run) -> list[str]:
        """Each item's prompt with the most shots (at most ``k_max``) that fit the model's context together with
        the answer's tokens, shots dropped from the last (Hendrycks, LLM-KICK); all ``k_max`` shots when the
        engine cannot count tokens. A question too long even without shots keeps zero shots (the engine then
        keeps its last tokens)."""
        limit = run.max_length
        probe = run.token_counts(["?\nAnswer:", "?\nAnswer: A"]) if limit else None
        answer = 1 if probe is None or protocol == "kick" else probe[1] - probe[0]
        prompts: list[str | None] = [None] * len(items)
        used = [k_max] * len(items)
        pending = list(range(len(items)))
        for k in range(k_max, -1, -1):
            texts = [self.prompt(items[i], dev[items[i].subject][:k]) for i in pending]
            counts = run.token_counts(texts) if probe is not None else [0] * len(texts)
            left = []
            for i, text, count in zip(pending, texts, counts):
                if count + answer <= limit or probe is None or k == 0:
                    prompts[i], used[i] = text, k
                else:
                    left.append(i)
            pending = left
            if not pending:
                break
        too_long = 0
        if probe is not None:
            too_long = sum(c + answer > limit for c in run.token_counts([p for p, k in zip(prompts, used) if k == 0]))
        self.shots_used = {item.id: k for item, k in zip(items, used)}
        self.last_run = {"truncated": too_long, "shots_dropped": sum(k_max - k for k in used)}
        return prompts

    # --- report --------------------------------------------------------------------------------

    def details(self, items: Sequence[MMLUItem], scores: Sequence[float], outputs: Sequence[str]) -> dict[str, float]:
        """Accuracy and item count per MMLU category ("STEM", "STEM n", ...; categories without items are left
        out). The shots that fitted are per run (``shots_used``), not part of a stored result, so not here."""
        figures: dict[str, float] = {}
        for category in CATEGORIES:
            picked = [s for i, s in zip(items, scores) if SUBJECT_CATEGORY.get(i.subject) == category]
            if picked:
                figures[category] = sum(picked) / len(picked)
                figures[f"{category} n"] = float(len(picked))
        return figures
