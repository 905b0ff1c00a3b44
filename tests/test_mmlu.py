"""MMLU: the Hendrycks prompt, shots that fit the context, stratified subsets, both scoring protocols through
requests, data loading, and the engine's prefix reuse giving the same results as full prompts (tiny random
LLaMA and SmolLM2-135M)."""

import collections
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import (
    CATEGORIES,
    MMLU,
    SUBJECT_CATEGORY,
    MMLUDataset,
    MMLUItem,
    by_subject,
    format_prefix,
    format_question,
    stratified_subset,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the bundled data, never the hub


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: these forward passes are small, and on a busy 2-core machine two threads contend
    (measured: SmolLM2 on 300 tokens 2 s with one thread, 13-15 s with two, while other jobs ran)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundled():
    task = MMLU()
    dataset = task.load(Settings())
    return task, dataset, by_subject(dataset.dev)


def item(subject="anatomy", number=0, answer=0, question="Q?", choices=("w", "x", "y", "z")) -> MMLUItem:
    return MMLUItem(f"mmlu/test/{subject}/{number}", question, ("ABCD"[answer],), subject, tuple(choices), answer)


def pick(dataset, per_subject: dict[str, int]) -> list[MMLUItem]:
    """The first n test items of each named subject, in dataset order."""
    left = dict(per_subject)
    chosen = []
    for i in dataset.examples:
        if left.get(i.subject, 0) > 0:
            chosen.append(i)
            left[i.subject] -= 1
    return chosen


# --- prompt --------------------------------------------------------------------------------------


def test_prompt_is_the_hendrycks_format(bundled):
    task, dataset, dev = bundled
    first = dataset.examples[0]
    assert first.id == "mmlu/test/abstract_algebra/0"
    # hendrycks/test evaluate.py (and llm-kick main_mmlu.py): format_subject gives " abstract algebra", hence
    # the double space after "about"; each shot ends "Answer: {letter}\n\n", the question ends "Answer:".
    assert task.prompt(first, dev["abstract_algebra"][:1]) == (
        "The following are multiple choice questions (with answers) about  abstract algebra.\n\n"
        "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    )
    strict = task.requests([first], dev["abstract_algebra"], Settings())
    assert [r.continuation for r in strict] == [" A", " B", " C", " D"]
    assert all(isinstance(r, LoglikelihoodRequest) and r.context.count("\nAnswer: ") == 5 for r in strict)
    [kick] = task.requests([first], dev["abstract_algebra"], Settings(protocol="kick"))
    assert isinstance(kick, GenerationRequest) and kick.prompt == strict[0].context and kick.max_new_tokens == 1
    assert format_prefix("us_foreign_policy", []) == (
        "The following are multiple choice questions (with answers) about  us foreign policy.\n\n"
    )


def test_shots_default_to_five_and_follow_kick_shots():
    assert MMLU.shots_for(Settings()) == 5 and MMLU.shots_for(Settings(shots=2)) == 2


def test_more_shots_than_the_dev_split_is_a_clear_error(bundled):
    task, dataset, _ = bundled
    with pytest.raises(KickError, match=r"6 shots asked but the dev split of abstract_algebra has 5"):
        MMLU().split(dataset, Settings(shots=6))


def test_split_gives_the_first_k_dev_questions_of_each_evaluated_subject(bundled):
    task, dataset, dev = bundled
    for run in (Settings(shots=2, limit=10), Settings(protocol="kick", limit=3), Settings(limit=60, seed=1)):
        shots, items = task.split(dataset, run)
        subjects = list(dict.fromkeys(i.subject for i in items))
        assert shots == [s for subject in subjects for s in dev[subject][: MMLU.shots_for(run)]]
    with pytest.raises(KickError, match=r"no dev questions for abstract_algebra: pass the shots the task's split"):
        task.requests(dataset.examples[:1], [], Settings())  # the shots travel in the arguments, never in the task


def test_template_hash_follows_protocol_and_shots():
    hashes = {
        MMLU().template_hash(s) for s in (Settings(), Settings(shots=5), Settings(protocol="kick"), Settings(shots=3))
    }
    assert len(hashes) == 3  # shots 0 and 5 are the same prompt


# --- stratified limit ----------------------------------------------------------------------------


def test_limit_is_stratified_deterministic_and_ordered(bundled):
    task, dataset, _ = bundled
    _, items = task.split(dataset, Settings(limit=60))
    assert len(items) == 60 and len({i.subject for i in items}) == 57
    # one per subject, the 3 left over to the largest remainders of the proportional shares
    assert {s for s, n in collections.Counter(i.subject for i in items).items() if n == 2} == {
        "professional_law",
        "moral_scenarios",
        "miscellaneous",
    }
    position = {e.id: n for n, e in enumerate(dataset.examples)}
    assert [position[i.id] for i in items] == sorted(position[i.id] for i in items)
    assert task.split(dataset, Settings(limit=60))[1] == items
    assert task.split(dataset, Settings(limit=60, seed=1))[1] != items
    _, few = task.split(dataset, Settings(limit=10))
    assert len(few) == 10 and len({i.subject for i in few}) == 10  # fewer than subjects: the largest shares


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=12), st.integers(0, 400), st.integers(0, 3))
def test_stratified_subset_properties(sizes, limit, seed):
    items = [item(f"s{s}", n) for s, size in enumerate(sizes) for n in range(size)]
    chosen = stratified_subset(items, limit, seed, "mmlu")
    assert chosen == stratified_subset(items, limit, seed, "mmlu")
    assert len(chosen) == min(limit, len(items))
    assert chosen == [i for i in items if i in set(chosen)]  # a subset, in dataset order
    counts = collections.Counter(i.subject for i in chosen)
    n_subjects, total = len(sizes), len(items)
    if limit >= total:
        return
    for s, size in enumerate(sizes):  # largest remainder: within one of the proportional share
        if limit >= n_subjects:
            share = 1 + (limit - n_subjects) * (size - 1) / (total - n_subjects)
        else:
            share = limit * size / total
        assert share - 1 < counts[f"s{s}"] < share + 1


# --- scoring -------------------------------------------------------------------------------------


class FixedAnswers:
    """A stand-in engine: the same letter log-likelihoods and the same greedy text for every question."""

    name = "fixed"
    max_length = None

    def __init__(self, letters: dict[str, float], greedy: str):
        self.letters, self.greedy, self.asked = letters, greedy, []

    def loglikelihood(self, requests, progress=None):
        self.asked += requests
        return [(self.letters[r.continuation.strip()], False) for r in requests]

    def generate(self, requests, progress=None):
        self.asked += requests
        return [self.greedy for _ in requests]


def test_scoring_on_hand_written_answers():
    items = [item(number=n, answer=n % 4) for n in range(6)]
    dev = [MMLUItem(f"mmlu/dev/anatomy/{n}", "S?", ("A",), "anatomy", ("1", "2", "3", "4"), 0) for n in range(5)]
    engine = FixedAnswers({"A": -3.0, "B": -2.0, "C": -1.0, "D": -4.0}, "\n")
    scores, outputs = MMLU().evaluate(items, dev, Settings(), Runner(engine))
    assert outputs == ["C"] * 6 and scores == [float(i.answers[0] == "C") for i in items]
    assert len(engine.asked) == 24 and engine.asked[0].context.count("Answer: A") == 5
    scores, outputs = MMLU().evaluate(items, dev, Settings(protocol="kick"), Runner(engine))
    assert outputs == ["\n"] * 6 and scores == [0.0] * 6  # kick takes the greedy token, whatever it is
    engine.greedy = " C"
    scores, outputs = MMLU().evaluate(items, dev, Settings(protocol="kick"), Runner(engine))
    assert outputs == [" C"] * 6 and scores == [float(i.answers[0] == "C") for i in items]


def test_strict_prediction_is_the_first_best_letter():
    dev = [MMLUItem(f"mmlu/dev/anatomy/{n}", "S?", ("A",), "anatomy", ("1", "2", "3", "4"), 0) for n in range(5)]
    run = Runner(FixedAnswers({"A": -2.0, "B": -1.0, "C": -1.0, "D": -3.0}, ""))
    assert MMLU().evaluate([item()], dev, Settings(), run)[1] == ["B"]
    run = Runner(FixedAnswers({"A": -1.0, "B": -1.0, "C": -1.0, "D": -1.0}, ""))
    assert MMLU().evaluate([item()], dev, Settings(), run)[1] == ["A"]


@pytest.mark.parametrize("output, score", [(" B", 1.0), ("B", 1.0), ("\nB", 1.0), ("B.", 0.0), ("b", 0.0), ("", 0.0)])
def test_kick_score_is_the_last_character(output, score):
    assert MMLU().score(item(answer=1), None, output, Settings(protocol="kick")) == score


def test_details_per_category():
    items = [item("anatomy", 0), item("anatomy", 1), item("philosophy", 0), item("astronomy", 0)]
    figures = MMLU().details(items, [1.0, 0.0, 1.0, 0.0], ["A"] * 4)
    assert figures == {"STEM": 0.0, "STEM n": 1.0, "humanities": 1.0, "humanities n": 1.0, "other": 0.5, "other n": 2.0}


def test_category_map_covers_the_57_subjects(bundled):
    _, dataset, dev = bundled
    assert set(SUBJECT_CATEGORY) == {i.subject for i in dataset.examples} == set(dev)
    counts = collections.Counter(SUBJECT_CATEGORY.values())
    assert counts == {"STEM": 18, "humanities": 13, "social sciences": 12, "other": 14}
    assert CATEGORIES == ("STEM", "humanities", "social sciences", "other")


# --- data ----------------------------------------------------------------------------------------


def test_bundled_data_loads_with_provenance(bundled):
    _, dataset, dev = bundled
    assert isinstance(dataset, MMLUDataset)
    assert len(dataset.examples) == 14042 and len(dataset.dev) == 285
    assert all(len(shots) == 5 for shots in dev.values())
    assert dataset.source == "bundled:mmlu/mmlu_test.jsonl+mmlu/mmlu_dev.jsonl"
    assert len(dataset.content_hash) == 64
    first = dataset.examples[0]
    assert first.answers == ("B",) and first.answer_index == 1 and first.choices == ("0", "4", "2", "6")


def write_csv_data(root: Path, subjects=("anatomy", "virology"), rows=3) -> None:
    for split in ("dev", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            lines = [
                f'"{subject} {split} {n}, with a comma\nand a newline?",a{n},b{n},c{n},d{n},{"ABCD"[n % 4]}'
                for n in range(rows if split == "test" else 5)
            ]
            (root / split / f"{subject}_{split}.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["", "data", "mmlu", "mmlu/data"])
def test_hendrycks_csv_data_dir(tmp_path, layout):
    write_csv_data(tmp_path / layout)
    task = MMLU()
    dataset = task.load(Settings(data_dir=tmp_path))
    assert [i.id for i in dataset.examples][:3] == ["mmlu/test/anatomy/0", "mmlu/test/anatomy/1", "mmlu/test/anatomy/2"]
    assert dataset.examples[1].question == "anatomy test 1, with a comma\nand a newline?"
    assert dataset.examples[1].answers == ("B",) and dataset.examples[1].choices == ("a1", "b1", "c1", "d1")
    assert len(dataset.dev) == 10 and dataset.source.startswith("local:")
    _, items = task.split(dataset, Settings(limit=2))
    assert {i.subject for i in items} == {"anatomy", "virology"}


def test_missing_dev_csv_names_the_file(tmp_path):
    write_csv_data(tmp_path)
    (tmp_path / "dev" / "virology_dev.csv").unlink()
    with pytest.raises(KickError, match=r"virology_dev.csv is missing .*data.tar"):
        MMLU().load(Settings(data_dir=tmp_path))


def test_malformed_csv_names_file_and_row(tmp_path):
    write_csv_data(tmp_path)
    (tmp_path / "test" / "anatomy_test.csv").write_text("q?,a,b,c,d,A\nq2?,a,b,c,d\n")
    with pytest.raises(KickError, match=r"anatomy_test.csv:2: expected 6 columns"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "test" / "anatomy_test.csv").write_text("q?,a,b,c,d,E\n")
    with pytest.raises(KickError, match=r"anatomy_test.csv:1: the answer must be a letter A-D"):
        MMLU().load(Settings(data_dir=tmp_path))


def test_jsonl_data_dir_and_its_errors(tmp_path):
    (tmp_path / "mmlu").mkdir()
    record = {"id": "t0", "subject": "anatomy", "question": "q?", "choices": ["a", "b", "c", "d"], "answer": "C"}
    (tmp_path / "mmlu" / "mmlu_test.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(KickError, match=r"mmlu_dev.jsonl is missing"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "mmlu" / "mmlu_dev.jsonl").write_text(json.dumps({**record, "id": "d0"}) + "\n{oops\n")
    with pytest.raises(KickError, match=r"mmlu_dev.jsonl:2: not valid JSON"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "mmlu" / "mmlu_dev.jsonl").write_text(json.dumps({**record, "id": "d0", "choices": ["a"]}) + "\n")
    with pytest.raises(KickError, match=r"mmlu_dev.jsonl record 'd0': choices must be a list of 4 strings"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "mmlu" / "mmlu_dev.jsonl").write_text(json.dumps({**record, "id": "d0"}) + "\n")
    dataset = MMLU().load(Settings(data_dir=tmp_path))
    assert dataset.examples[0].answers == ("C",) and dataset.examples[0].answer_index == 2
    with pytest.raises(KickError, match=r"5 shots asked but the dev split of anatomy has 1"):
        MMLU().split(dataset, Settings())


def test_data_dir_without_mmlu_falls_back_and_names_the_layout_it_takes(tmp_path, monkeypatch):
    import pytest_kick.tasks.mmlu as mmlu

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert MMLU().load(Settings(data_dir=tmp_path)).source.startswith("bundled:")
    assert "data.tar" in mmlu.LOCAL_LAYOUT and "mmlu_test.jsonl" in mmlu.LOCAL_LAYOUT


def test_hub_rows_come_before_the_bundled_sample(monkeypatch):
    import pytest_kick.tasks.mmlu as mmlu

    rows = {
        "test": [{"question": "q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 3}] * 2,
        "dev": [{"question": "s?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 0}],
    }
    monkeypatch.setattr(
        mmlu,
        "hub_rows",
        lambda path, name, split, notify=None: (rows[split], f"hub:{path}/{name}@{split}", f"fp-{split}"),
    )
    dataset = MMLU().load(Settings(data_dir=Path("/nonexistent")))
    assert [i.id for i in dataset.examples] == ["mmlu/test/anatomy/0", "mmlu/test/anatomy/1"]
    assert dataset.examples[0].answers == ("D",) and dataset.dev[0].id == "mmlu/dev/anatomy/0"
    assert dataset.source == "hub:cais/mmlu/all@test+hub:cais/mmlu/all@dev"


# --- context fitting and prefix reuse on the tiny random LLaMA ------------------------------------


class Recording(Runner):
    """A runner that keeps every request and answer (to compare letter log-likelihoods)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.asked, self.answers = [], []

    def __call__(self, requests):
        answers = super().__call__(requests)
        self.asked += requests
        self.answers += answers
        return answers


def test_shots_are_dropped_from_the_last_until_the_prompt_fits(tiny, bundled):
    _, dataset, dev = bundled
    model, tokenizer = tiny
    target = dataset.examples[0]
    shots = dev[target.subject]
    # byte-level tokenizer without BOS: one token per byte; strict's continuation " A" is two tokens, so a
    # prompt of n bytes needs a context of n + 2.
    sizes = [len((format_prefix(target.subject, shots[:k]) + format_question(target)).encode()) for k in range(6)]
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=2)
    task = MMLU()
    for context, expected in [(sizes[2] + 2, 2), (sizes[2] + 1, 1), (sizes[5] + 2, 5), (sizes[0] + 2, 0)]:
        engine.max_length = context
        run = Recording(engine)
        task.evaluate([target], shots, Settings(), run)
        fitted = task.fit([target], shots, Settings(), Runner(engine))
        assert fitted.shots_used == {target.id: expected} and fitted.truncated == 0, context
        assert run.asked[0].context == task.prompt(target, shots[:expected]) == fitted.prompts[0]
    engine.max_length = sizes[0]  # too long even without shots: sent without shots, the engine keeps its end
    scores, _ = task.evaluate([target], shots, Settings(), Runner(engine))
    fitted = task.fit([target], shots, Settings(), Runner(engine))
    assert fitted.shots_used == {target.id: 0} and fitted.truncated == 1 and len(scores) == 1


@pytest.mark.parametrize("protocol, batch_size", [("strict", 1), ("strict", 3), ("kick", 3)])
def test_prefix_reuse_matches_full_prompts_on_tiny_llama(tiny, bundled, protocol, batch_size):
    """Same letter log-likelihoods (1e-4), predictions and scores with and without the engine's prefix reuse;
    the items span subjects, shot counts dropped to fit a 600-token context, and one truncated question."""
    _, dataset, dev = bundled
    items = pick(dataset, {"abstract_algebra": 4, "miscellaneous": 4, "professional_law": 1})
    model, tokenizer = tiny
    shots = [s for subject in ("abstract_algebra", "miscellaneous", "professional_law") for s in dev[subject]]
    runs = {}
    for reuse in (True, False):
        engine = LocalEngine(model, tokenizer, "cpu", batch_size=batch_size, reuse_prefix=reuse)
        engine.max_length = 600
        task, run = MMLU(), Recording(engine)
        runs[reuse] = (
            task.evaluate(items, shots, Settings(protocol=protocol), run),
            run,
            dict(engine.last_plan),
            task.fit(items, shots, Settings(protocol=protocol), Runner(engine)),
        )
    (on, run_on, plan, fitted), (off, run_off, plan_off, _) = runs[True], runs[False]
    assert on == off and fitted.truncated == 1
    assert len({(i.subject, fitted.shots_used[i.id]) for i in items}) > 3  # several distinct prefixes
    if protocol == "strict":
        assert plan["groups"] >= 2 and plan["tokens_fed"] < plan_off["tokens_fed"]
        gaps = [abs(a[0] - b[0]) for a, b in zip(run_on.answers, run_off.answers)]
        assert max(gaps) < 1e-4


# --- SmolLM2-135M --------------------------------------------------------------------------------


@pytest.mark.slow
def test_prefix_reuse_matches_full_prompts_on_smollm2(smollm2, bundled):
    _, dataset, dev = bundled
    items = pick(dataset, {"astronomy": 2, "marketing": 2})
    shots = [*dev["astronomy"], *dev["marketing"]]
    # SmolLM2 merges the prefix's final "\n\n" into one token alone, two before a question: the shared
    # prefix the engine finds in the tokens stops before it, and every question still runs on it.
    prefix = format_prefix("astronomy", dev["astronomy"][:1])
    alone = smollm2.tokenizer(prefix)["input_ids"]
    joined = smollm2.tokenizer(prefix + format_question(items[0]))["input_ids"]
    assert joined[: len(alone) - 1] == alone[:-1] and joined[: len(alone)] != alone
    for protocol in ("strict", "kick"):
        results = []
        for reuse in (True, False):
            engine = LocalEngine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=4, reuse_prefix=reuse)
            run = Recording(engine)
            results.append((MMLU().evaluate(items, shots, Settings(shots=1, protocol=protocol), run), run, engine))
        (on, run_on, engine_on), (off, run_off, _) = results
        assert on == off
        if protocol == "strict":
            assert engine_on.last_plan["groups"] == 2 and engine_on.last_plan["passes"] == 4  # one pass a question
            assert max(abs(a[0] - b[0]) for a, b in zip(run_on.answers, run_off.answers)) < 1e-4
