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
``MMLU.fit`` gives a run's prompts and the shots each question kept (tasks/mmlu_prompt.py ``Fitted``); the task
keeps nothing between calls. MMLU is plain text: never the chat template.

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
from pytest_kick.tasks import mmlu_prompt
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows
from pytest_kick.tasks.mmlu_data import (  # noqa: F401 (items, subsets and categories: part of this API)
    CATEGORIES,
    HENDRYCKS_TAR,
    LETTERS,
    SUBJECT_CATEGORY,
    MMLUDataset,
    MMLUItem,
    by_subject,
    items_from_csv,
    items_from_hub,
    items_from_jsonl,
    stratified_subset,
)
from pytest_kick.tasks.mmlu_prompt import (  # noqa: F401 (the prompt strings and helpers: part of this API)
    HEADER,
    KICK_PROMPT_TOKENS,
    PANDAS_NA,
    QUESTION,
    SHOT,
    Fitted,
    as_pandas,
    display_subject,
    format_prefix,
    format_question,
)

DEFAULT_SHOTS = 5  # the paper's (and LLM-KICK's --ntrain default) setting
HUB_PATH, HUB_CONFIG = "cais/mmlu", "all"
BUNDLED_TEST, BUNDLED_DEV = "mmlu/mmlu_test.jsonl", "mmlu/mmlu_dev.jsonl"
LOCAL_LAYOUT = (
    f"test/*_test.csv and dev/*_dev.csv (Hendrycks' {HENDRYCKS_TAR}, extracted) in it, in data/ or "
    f"in mmlu/, or mmlu/mmlu_test.jsonl + mmlu/mmlu_dev.jsonl"
)


class MMLU:
    name = "mmlu"
    family = "mmlu"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.25
    score_range = (0.0, 1.0)  # every item scores within it (the sequential gate bets on that)

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
                tuple(items_from_hub(test_rows, "test", test_source)),
                f"{test_source}+{dev_source}",
                text_hash(test_digest, dev_digest),
                tuple(items_from_hub(dev_rows, "dev", dev_source)),
            )
        root = bundled_dir()
        test_path, dev_path = root / BUNDLED_TEST, root / BUNDLED_DEV
        return MMLUDataset(
            tuple(items_from_jsonl(test_path)),
            f"bundled:{BUNDLED_TEST}+{BUNDLED_DEV}",
            text_hash(file_hash(test_path), file_hash(dev_path)),
            tuple(items_from_jsonl(dev_path)),
        )

    def _load_local(self, root: Path) -> MMLUDataset | None:
        for folder in (root, root / "data", root / "mmlu", root / "mmlu" / "data"):
            if (folder / "test").is_dir() and any((folder / "test").glob("*_test.csv")):
                return self._load_csv(folder)
        test_path, dev_path = root / "mmlu" / "mmlu_test.jsonl", root / "mmlu" / "mmlu_dev.jsonl"
        if test_path.is_file() or dev_path.is_file():
            for path in (test_path, dev_path):
                if not path.is_file():
                    raise KickError(
                        f"--kick-data-dir {root}: {path} is missing; MMLU needs both "
                        f"mmlu_test.jsonl and mmlu_dev.jsonl (the dev split holds the shots)"
                    )
            return MMLUDataset(
                tuple(items_from_jsonl(test_path)),
                f"local:{test_path}+{dev_path}",
                text_hash(file_hash(test_path), file_hash(dev_path)),
                tuple(items_from_jsonl(dev_path)),
            )
        return None

    def _load_csv(self, folder: Path) -> MMLUDataset:
        test_files = sorted((folder / "test").glob("*_test.csv"))
        test, dev, hashes = [], [], []
        for test_file in test_files:
            subject = test_file.name[: -len("_test.csv")]
            dev_file = folder / "dev" / f"{subject}_dev.csv"
            if not dev_file.is_file():
                raise KickError(
                    f"{dev_file} is missing (the shots of {subject} come from it); "
                    f"restore the dev/ folder from {HENDRYCKS_TAR}"
                )
            test += items_from_csv(test_file, subject, "test")
            dev += items_from_csv(dev_file, subject, "dev")
            hashes += [file_hash(test_file), file_hash(dev_file)]
        return MMLUDataset(tuple(test), f"local:{folder}/{{test,dev}}/*.csv", text_hash(*hashes), tuple(dev))

    @staticmethod
    def shots_for(settings: Settings) -> int:
        """Shots per question: ``--kick-shots`` when positive, else 5 (the paper's setting; --kick-shots
        defaults to 0, which therefore means "the task's default", not zero-shot, for MMLU)."""
        return settings.shots if settings.shots > 0 else DEFAULT_SHOTS

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list[MMLUItem], list[MMLUItem]]:
        """(shots, items): the shots are the first ``k`` dev questions of each evaluated subject, in file order,
        subjects in the order of their first evaluated question; ``evaluate`` takes its shots from them."""
        dev, k = by_subject(getattr(dataset, "dev", ())), self.shots_for(settings)
        items = list(dataset.examples)
        self._check_shots(items, dev, k, "the data lacks its dev split, where the shots come from")
        if settings.protocol == "kick":  # the repo: every question, subjects sorted, each in file order
            items = sorted(items, key=lambda i: i.subject)  # stable: file order within a subject
            items = items if settings.limit is None else items[: settings.limit]
        else:
            items = stratified_subset(items, settings.limit, settings.seed, self.name)
        return [s for subject in dict.fromkeys(i.subject for i in items) for s in dev[subject][:k]], items

    @staticmethod
    def _check_shots(items: Sequence[MMLUItem], dev: dict[str, tuple[MMLUItem, ...]], k: int, lacking: str) -> None:
        for subject in dict.fromkeys(i.subject for i in items):
            have = len(dev.get(subject, ()))
            if have == 0:
                raise KickError(f"MMLU: no dev questions for {subject}: {lacking}")
            if have < k:
                raise KickError(
                    f"MMLU: {k} shots asked but the dev split of {subject} has {have} questions "
                    f"(MMLU's has 5 per subject); use --kick-shots 1..{have}"
                )

    def _shots_by_subject(self, items: Sequence[MMLUItem], shots: Sequence[MMLUItem], settings: Settings) -> dict:
        """The shots given, by subject, once every item's subject has ``k`` of them."""
        dev = by_subject(shots)
        self._check_shots(
            items, dev, self.shots_for(settings), "pass the shots the task's split gives (its subject's dev questions)"
        )
        return dev

    # --- prompts -------------------------------------------------------------------------------

    @staticmethod
    def prompt(item: MMLUItem, shots: Sequence[MMLUItem], protocol: str = "strict") -> str:
        return mmlu_prompt.prompt(item, shots, protocol)

    @staticmethod
    def item_requests(prompt: str, protocol: str) -> list[LoglikelihoodRequest] | list[GenerationRequest]:
        """strict: the log-likelihood of each letter (" A" .. " D") after the prompt; kick: one greedy token."""
        if protocol == "kick":
            return [GenerationRequest(prompt, 1)]
        return [LoglikelihoodRequest(prompt, " " + letter) for letter in LETTERS]

    def requests(self, items, shots, settings: Settings) -> list:
        """The requests of every item with all its shots, in item order (``evaluate`` fits them to the model)."""
        dev, k = self._shots_by_subject(items, shots, settings), self.shots_for(settings)
        return [
            r
            for i in items
            for r in self.item_requests(mmlu_prompt.prompt(i, dev[i.subject][:k], settings.protocol), settings.protocol)
        ]

    def score(self, item: MMLUItem, request, output: str, settings: Settings) -> float:
        """strict: ``output`` is the predicted letter; kick: the decoded greedy token, scored on its last character."""
        if settings.protocol == "kick":
            return float(output[-1:] == item.answers[0])
        return float(output == item.answers[0])

    def chance(self, item: MMLUItem) -> float:
        """A model that knows nothing picks one of the item's choices."""
        return 1 / len(item.choices)

    def template_hash(self, settings: Settings) -> str:
        readout = (
            "kick:greedy-1-token:last-char" if settings.protocol == "kick" else "strict:next-token-logits:' A'..' D'"
        )
        fit = (
            f"fit:drop-last-shots,prompt<={KICK_PROMPT_TOKENS},left-truncate,pandas-nan"
            if settings.protocol == "kick"
            else "fit:drop-last-shots,context-1,left-truncate"
        )
        return text_hash(
            HEADER, QUESTION, SHOT, "subject:leading-space", f"shots:{self.shots_for(settings)}", fit, readout
        )

    # --- evaluation ----------------------------------------------------------------------------

    def fit(self, items: Sequence[MMLUItem], shots: Sequence[MMLUItem], settings: Settings, run) -> Fitted:
        """The prompts ``evaluate`` asks for these arguments, and the shots each question kept (mmlu_prompt.fit):
        what a caller that wants a run's shots or truncations computes, the task keeps none of it."""
        dev = self._shots_by_subject(items, shots, settings)
        return mmlu_prompt.fit(items, dev, self.shots_for(settings), settings.protocol, run)

    def evaluate(
        self, items: Sequence[MMLUItem], shots: Sequence[MMLUItem], settings: Settings, run
    ) -> tuple[list[float], list[str]]:
        """(scores, outputs): outputs are the predicted letters (strict) or decoded greedy tokens (kick)."""
        per_item = [self.item_requests(p, settings.protocol) for p in self.fit(items, shots, settings, run).prompts]
        answers = run([r for requests in per_item for r in requests])
        outputs = []
        for n in range(len(items)):
            if settings.protocol == "kick":
                outputs.append(answers[n])
            else:
                loglikelihoods = [ll for ll, _ in answers[4 * n : 4 * n + 4]]
                outputs.append(LETTERS[max(range(4), key=lambda c: loglikelihoods[c])])  # the first best on ties
        return [self.score(i, None, o, settings) for i, o in zip(items, outputs)], outputs

    # --- report --------------------------------------------------------------------------------

    def details(self, items: Sequence[MMLUItem], scores: Sequence[float], outputs: Sequence[str]) -> dict[str, float]:
        """Accuracy and item count per MMLU category ("STEM", "STEM n", ...; categories without items are left
        out). The shots that fitted are per run (``fit``), not part of a stored result, so not here."""
        figures: dict[str, float] = {}
        for category in CATEGORIES:
            picked = [s for i, s in zip(items, scores) if SUBJECT_CATEGORY.get(i.subject) == category]
            if picked:
                figures[category] = sum(picked) / len(picked)
                figures[f"{category} n"] = float(len(picked))
        return figures
