"""MMLU (LLM-KICK, section "Multiple-choice QA"): 57 subjects, four options, 5-shot from each subject's dev split.

Prompt: the format of Hendrycks et al.'s evaluation (hendrycks/test ``evaluate.py``), which LLM-KICK copies
verbatim (VITA-Group/llm-kick, ``multiple_choice_qa/main_mmlu.py``)::

    The following are multiple choice questions (with answers) about  abstract algebra.\\n\\n
    {question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer: {letter}\\n\\n      (one block per shot)
    {question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer:

The double space after "about" is theirs: their ``format_subject`` puts a space before every word of the
subject, the first one included. Shots are the first ``k`` rows of the subject's dev split, in file order;
when the prompt does not fit the model's context (``max_position_embeddings``, one position kept for the
answer), shots are dropped from the last one until it does (as both repos do), and a question too long
even without shots keeps its last tokens (and a BOS the tokenizer puts first). The shots each question used
are recorded (``shots_used``). MMLU is plain text: never the chat template.

Protocols:
- ``strict`` (default): the answer is the option whose letter token (" A" .. " D") has the highest
  log-likelihood right after "Answer:" (Hendrycks' scoring): one forward pass per question. With a
  tokenizer that splits " A" into " " + "A" (byte-level), the shared " " is fed too and "A" .. "D" read
  after it: the same argmax as the full two-token log-likelihood.
- ``kick``: LLM-KICK's way: one greedy token after "Answer:", correct when the last character of the
  decoded text equals the gold letter (their ``output[-1:] == label``).

Prefix KV reuse: the header and shots are the same for every question of a subject, so they run once;
their key/value cache is copied to each batch of the subject's questions, which then run only their own
tokens (right-padded, positions continuing after the prefix). The cached tokens are a literal prefix of
every question's own tokenization (the common token prefix, checked per question: a tokenizer may merge
the shots' final "\n\n" differently alone than before a question, as SmolLM2's does), so both paths score
the same token sequences (tested: equal predictions, logits within 1e-4); a question whose tokens do not
start with the prefix's runs in full. ``MMLU(reuse_prefix=False)`` runs every prompt in full.

``--kick-limit`` samples questions stratified by subject (``stratified_subset``: one per subject first when
the limit allows, the rest in proportion to subject size), in dataset order, seeded by ``--kick-seed``.

Data, in order: the Hugging Face hub (``cais/mmlu``, config ``all``, test + dev); ``--kick-data-dir``
(Hendrycks' ``data.tar`` layout ``{dev,test}/*_{dev,test}.csv``, directly, under ``data/`` or under
``mmlu/``; or ``mmlu/mmlu_{test,dev}.jsonl`` records); the bundled copy (the full test and dev splits).
"""

from __future__ import annotations

import copy
import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest
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


@dataclass(frozen=True)
class Readout:
    """What one forward pass says about a question: the logits of the letter tokens at the answer position,
    the greedy token there, the shots that fitted, and whether the question ran on a cached prefix."""

    choice_logits: tuple[float, ...]
    greedy: int
    shots: int
    reused: bool
    truncated: bool = False


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


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def letter_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """(tokens fed after "Answer:" before the letter, one token per letter A-D) for the strict readout.

    " A" is one token for most tokenizers (GPT-2/SentencePiece style): nothing is fed and the four
    tokens are read right after "Answer:". A tokenizer that splits it (" " + "A") has the shared " "
    fed first. Measured in context ("...\\nAnswer: A" against "...\\nAnswer:").
    """
    context = "?\nAnswer:"
    base = tokenizer(context, add_special_tokens=False)["input_ids"]
    rests = []
    for letter in LETTERS:
        ids = tokenizer(f"{context} {letter}", add_special_tokens=False)["input_ids"]
        if ids[:len(base)] != base:
            raise KickError(f"MMLU: this tokenizer merges \"Answer:\" with the following letter ({ids!r}); "
                            f"use --kick-protocol kick")
        rests.append(ids[len(base):])
    shared = rests[0]
    for rest in rests[1:]:
        shared = shared[:_common_prefix(shared, rest)]
    letters = [rest[len(shared):] for rest in rests]
    if any(len(t) != 1 for t in letters) or len({t[0] for t in letters}) != 4:
        raise KickError(f"MMLU: the letters A-D are not single distinct tokens for this tokenizer ({letters!r}); "
                        f"use --kick-protocol kick")
    return shared, [t[0] for t in letters]


LOCAL_LAYOUT = (f"test/*_test.csv and dev/*_dev.csv (Hendrycks' {HENDRYCKS_TAR}, extracted) in it, in data/ or "
                f"in mmlu/, or mmlu/mmlu_test.jsonl + mmlu/mmlu_dev.jsonl")


class MMLU:
    name = "mmlu"
    family = "mmlu"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.25

    def __init__(self, reuse_prefix: bool = True):
        self.reuse_prefix = reuse_prefix
        self._dev: dict[str, tuple[MMLUItem, ...]] = {}
        self.shots_used: dict[str, int] = {}  # item id -> shots that fitted, from the last evaluate
        self.last_run: dict[str, int] = {}  # how the last evaluate ran: questions reused / in full / truncated
        self.last_readouts: list[Readout] = []

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

    def requests(self, items, shots, settings: Settings) -> list[GenerationRequest]:
        """One-token generation requests with all shots (for inspection: ``evaluate`` is the scoring path)."""
        dev = self._group_dev(shots) if shots else self._dev
        k = self.shots_for(settings)
        return [GenerationRequest(self.prompt(i, dev.get(i.subject, ())[:k]), 1) for i in items]

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
        return text_hash(HEADER, QUESTION, SHOT, "subject:leading-space", f"shots:{self.shots_for(settings)}",
                         "fit:drop-last-shots,context-1,left-truncate", readout)

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, engine, items: Sequence[MMLUItem], shots: Sequence[MMLUItem], settings: Settings,
                 progress: Callable[[int, int], None] | None = None) -> tuple[list[float], list[str]]:
        """(scores, outputs): outputs are the predicted letters (strict) or decoded greedy tokens (kick)."""
        outputs = self.predictions(engine.tokenizer, self.readouts(engine, items, shots, settings, progress),
                                   settings.protocol)
        return [self.score(i, None, o, settings) for i, o in zip(items, outputs)], outputs

    @staticmethod
    def predictions(tokenizer, readouts: Sequence[Readout], protocol: str) -> list[str]:
        """strict: the letter with the highest logit (the first on ties); kick: the decoded greedy token."""
        if protocol == "kick":
            return [tokenizer.decode([r.greedy], skip_special_tokens=True, clean_up_tokenization_spaces=False)
                    for r in readouts]
        return [LETTERS[max(range(4), key=lambda c: r.choice_logits[c])] for r in readouts]

    def readouts(self, engine, items: Sequence[MMLUItem], shots: Sequence[MMLUItem], settings: Settings,
                 progress: Callable[[int, int], None] | None = None, reuse: bool | None = None) -> list[Readout]:
        """One forward pass per question (on a cached subject prefix when ``reuse``, default
        ``self.reuse_prefix``); ``shots``: dev items to draw shots from, or empty for the split's."""
        import torch

        reuse = self.reuse_prefix if reuse is None else reuse
        dev = self._group_dev(shots) if shots else self._dev
        k_max = self.shots_for(settings)
        self._check_shots(items, dev, k_max)
        tokenizer, model = engine.tokenizer, engine.model
        try:
            shared, letter_ids = letter_tokens(tokenizer)
        except KickError:
            if settings.protocol != "kick":
                raise
            shared, letter_ids = [], []  # kick reads the greedy token only
        extra = shared if settings.protocol != "kick" else []
        context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        budget = context - 1 - len(extra)  # prompt tokens that fit with the fed tokens and the answer

        def encode(text: str, special: bool = True) -> list[int]:
            return tokenizer(text, add_special_tokens=special)["input_ids"]

        prefixes: dict[tuple[str, int], str] = {}
        sequences: list[list[int]] = []
        plan: list[tuple[int, bool]] = []  # (shots used, truncated) per item
        for item in items:
            suffix = format_question(item)
            for k in range(k_max, -1, -1):
                key = (item.subject, k)
                if key not in prefixes:
                    prefixes[key] = format_prefix(item.subject, dev[item.subject][:k])
                ids = encode(prefixes[key] + suffix)
                if len(ids) <= budget:
                    break
            truncated = len(ids) > budget
            if truncated:  # keep the last tokens, and a BOS the tokenizer put first
                head = ids[:1] if ids[0] == tokenizer.bos_token_id else []
                ids = head + ids[len(ids) - budget + len(head):]
            sequences.append(ids + extra)
            plan.append((k, truncated))

        results: list[tuple[list[float], int] | None] = [None] * len(items)
        reused = [False] * len(items)
        done = 0

        def record(indices: list[int], logits) -> None:
            nonlocal done
            picked = logits[:, letter_ids].tolist()
            greedy = logits.argmax(dim=-1).tolist()
            for row, i in enumerate(indices):
                results[i] = (picked[row], greedy[row])
            done += len(indices)
            if progress:
                progress(done, len(items))

        full = list(range(len(items)))
        with torch.inference_mode():
            if reuse:
                groups: dict[tuple[str, int], list[int]] = {}
                for i, item in enumerate(items):
                    if not plan[i][1]:
                        groups.setdefault((item.subject, plan[i][0]), []).append(i)
                full = [i for i in full if plan[i][1]]  # truncated: no shared prefix
                for key, members in groups.items():
                    prefix_ids = encode(prefixes[key])
                    usable = {i: min(_common_prefix(prefix_ids, sequences[i]), len(sequences[i]) - 1) for i in members}
                    fits = [i for i in members if usable[i] >= max(1, len(prefix_ids) - BOUNDARY_SLACK)]
                    full += [i for i in members if i not in fits]
                    if not fits:
                        continue
                    cut = min(usable[i] for i in fits)
                    cache = self._prefix_cache(engine, prefix_ids[:cut])
                    fits.sort(key=lambda i: (-len(sequences[i]), i))
                    for start in range(0, len(fits), engine.batch_size):
                        batch = fits[start:start + engine.batch_size]
                        past = copy.deepcopy(cache)
                        past.batch_repeat_interleave(len(batch))
                        record(batch, self._last_logits(engine, [sequences[i][cut:] for i in batch], past, cut))
                        for i in batch:
                            reused[i] = True
            full.sort(key=lambda i: (-len(sequences[i]), i))
            for start in range(0, len(full), engine.batch_size):
                batch = full[start:start + engine.batch_size]
                record(batch, self._last_logits(engine, [sequences[i] for i in batch]))

        readouts = [Readout(tuple(r[0]), r[1], plan[i][0], reused[i], plan[i][1]) for i, r in enumerate(results)]
        self.last_readouts = readouts
        self.shots_used = {item.id: r.shots for item, r in zip(items, readouts)}
        self.last_run = {"reused": sum(reused), "full": len(items) - sum(reused),
                         "truncated": sum(t for _, t in plan), "shots_dropped": sum(k_max - k for k, _ in plan)}
        return readouts

    @staticmethod
    def _prefix_cache(engine, prefix_ids: list[int]):
        import torch

        ids = torch.tensor([prefix_ids], dtype=torch.long, device=engine.device)
        out = engine.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
        return out.past_key_values

    @staticmethod
    def _last_logits(engine, rows: list[list[int]], past=None, offset: int = 0):
        """Next-token logits [B, V] (float32, on the CPU) after each row's last token; rows are right-padded,
        on top of ``past`` (``offset`` cached tokens, shared by every row) when given."""
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), engine.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), offset + width), dtype=torch.long)
        mask[:, :offset] = 1
        for row, tokens in enumerate(rows):
            ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, offset:offset + len(tokens)] = 1
        positions = torch.arange(offset, offset + width, dtype=torch.long).expand(len(rows), width)
        last = torch.tensor([[len(r) - 1] for r in rows], dtype=torch.long)
        out = engine.model(input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device),
                           position_ids=positions.to(engine.device), past_key_values=past, use_cache=past is not None,
                           logits_to_keep=last.to(engine.device))
        return out.logits[:, -1, :].float().cpu()

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
