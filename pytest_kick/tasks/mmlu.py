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
  last character of the decoded text equals the gold letter (their ``output[-1:] == label``). Its shot
  budget is theirs: the prompt at most 2048 tokens whatever the model (``while input_ids.shape[-1] > 2048``),
  or the model's context less the answer token if that is smaller; ``--kick-limit N`` takes the first N
  questions in sorted-subject, file order; a field pandas reads as missing prints as ``nan`` (theirs is
  ``pd.read_csv``: 10 test options "None"). A question too long without shots (the repo would loop
  forever) is sent with zero shots and counted, as in strict.

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

from pathlib import Path
from typing import Callable, Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows
from pytest_kick.tasks.mmlu_data import (  # noqa: F401 (items and subsets: part of this API)
    HENDRYCKS_TAR,
    LETTERS,
    MMLUDataset,
    MMLUItem,
    items_from_csv,
    items_from_hub,
    items_from_jsonl,
    stratified_subset,
)

# Hendrycks / LLM-KICK prompt strings (hendrycks/test evaluate.py: gen_prompt, format_example, format_subject).
HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
QUESTION = "{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
SHOT = QUESTION + " {answer}\n\n"
DEFAULT_SHOTS = 5  # the paper's (and LLM-KICK's --ntrain default) setting
KICK_PROMPT_TOKENS = 2048  # LLM-KICK main_mmlu.py: shots dropped while the prompt exceeds 2048 tokens
# pandas.read_csv's default missing-value strings: a field equal to one of them is NaN, printed "nan"
PANDAS_NA = frozenset(("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"))
HUB_PATH, HUB_CONFIG = "cais/mmlu", "all"
BUNDLED_TEST, BUNDLED_DEV = "mmlu/mmlu_test.jsonl", "mmlu/mmlu_dev.jsonl"

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
                tuple(items_from_hub(test_rows, "test", test_source)), f"{test_source}+{dev_source}",
                text_hash(test_digest, dev_digest), tuple(items_from_hub(dev_rows, "dev", dev_source)),
            )
        root = bundled_dir()
        test_path, dev_path = root / BUNDLED_TEST, root / BUNDLED_DEV
        return MMLUDataset(tuple(items_from_jsonl(test_path)), f"bundled:{BUNDLED_TEST}+{BUNDLED_DEV}",
                           text_hash(file_hash(test_path), file_hash(dev_path)), tuple(items_from_jsonl(dev_path)))

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
            return MMLUDataset(tuple(items_from_jsonl(test_path)), f"local:{test_path}+{dev_path}",
                               text_hash(file_hash(test_path), file_hash(dev_path)), tuple(items_from_jsonl(dev_path)))
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
            test += items_from_csv(test_file, subject, "test")
            dev += items_from_csv(dev_file, subject, "dev")
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
        if settings.protocol == "kick":  # the repo: every question, subjects sorted, each in file order
            items = sorted(items, key=lambda i: i.subject)  # stable: file order within a subject
            return [], items if settings.limit is None else items[:settings.limit]
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

    def prompt(self, item: MMLUItem, shots: Sequence[MMLUItem], protocol: str = "strict") -> str:
        pandas = protocol == "kick"
        return format_prefix(item.subject, shots, pandas) + format_question(item, pandas=pandas)

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
        return [r for i in items for r in self.item_requests(
            self.prompt(i, dev.get(i.subject, ())[:k], settings.protocol), settings.protocol)]

    def score(self, item: MMLUItem, request, output: str, settings: Settings) -> float:
        """strict: ``output`` is the predicted letter; kick: the decoded greedy token, scored on its last character."""
        if settings.protocol == "kick":
            return float(output[-1:] == item.answers[0])
        return float(output == item.answers[0])

    def chance(self, item: MMLUItem) -> float:
        """A model that knows nothing picks one of the item's choices."""
        return 1 / len(item.choices)

    def template_hash(self, settings: Settings) -> str:
        readout = ("kick:greedy-1-token:last-char" if settings.protocol == "kick"
                   else "strict:next-token-logits:' A'..' D'")
        fit = (f"fit:drop-last-shots,prompt<={KICK_PROMPT_TOKENS},left-truncate,pandas-nan"
               if settings.protocol == "kick" else "fit:drop-last-shots,context-1,left-truncate")
        return text_hash(HEADER, QUESTION, SHOT, "subject:leading-space", f"shots:{self.shots_for(settings)}",
                         fit, readout)

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
        keeps its last tokens). kick: the repo's budget, a prompt of at most 2048 tokens (the answer's token
        not counted), or the model's context less that token when smaller."""
        limit = run.max_length
        if protocol == "kick":
            limit, answer = (KICK_PROMPT_TOKENS if not limit else min(KICK_PROMPT_TOKENS, limit - 1)), 0
        probe = run.token_counts(["?\nAnswer:", "?\nAnswer: A"]) if limit else None
        if protocol != "kick":
            answer = 1 if probe is None else probe[1] - probe[0]
        prompts: list[str | None] = [None] * len(items)
        used = [k_max] * len(items)
        pending = list(range(len(items)))
        for k in range(k_max, -1, -1):
            texts = [self.prompt(items[i], dev[items[i].subject][:k], protocol) for i in pending]
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
