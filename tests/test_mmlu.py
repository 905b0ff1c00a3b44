"""MMLU: the Hendrycks prompt, shots that fit the context, stratified subsets, both scoring protocols, data
loading, and prefix KV reuse giving the same logits as full prompts (tiny random LLaMA and SmolLM2-135M)."""

import collections
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.engine import Engine
from pytest_kick.errors import KickError
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import (
    CATEGORIES,
    MMLU,
    SUBJECT_CATEGORY,
    MMLUDataset,
    MMLUItem,
    Readout,
    format_prefix,
    format_question,
    letter_tokens,
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
    task.split(dataset, Settings())  # the task keeps the dev split for its shots
    return task, dataset, MMLU._group_dev(dataset.dev)


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
    [request] = task.requests([first], [], Settings())
    assert request.prompt.count("\nAnswer: ") == 5 and request.max_new_tokens == 1
    assert format_prefix("us_foreign_policy", []) == (
        "The following are multiple choice questions (with answers) about  us foreign policy.\n\n")


def test_shots_default_to_five_and_follow_kick_shots():
    assert MMLU.shots_for(Settings()) == 5 and MMLU.shots_for(Settings(shots=2)) == 2


def test_more_shots_than_the_dev_split_is_a_clear_error(bundled):
    task, dataset, _ = bundled
    with pytest.raises(KickError, match=r"6 shots asked but the dev split of abstract_algebra has 5"):
        MMLU().split(dataset, Settings(shots=6))


def test_template_hash_follows_protocol_and_shots():
    hashes = {MMLU().template_hash(s) for s in
              (Settings(), Settings(shots=5), Settings(protocol="kick"), Settings(shots=3))}
    assert len(hashes) == 3  # shots 0 and 5 are the same prompt


# --- stratified limit ----------------------------------------------------------------------------


def test_limit_is_stratified_deterministic_and_ordered(bundled):
    task, dataset, _ = bundled
    _, items = task.split(dataset, Settings(limit=60))
    assert len(items) == 60 and len({i.subject for i in items}) == 57
    # one per subject, the 3 left over to the largest remainders of the proportional shares
    assert {s for s, n in collections.Counter(i.subject for i in items).items() if n == 2} == {
        "professional_law", "moral_scenarios", "miscellaneous"}
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


class FixedLogits:
    """A stand-in model: the same hand-written next-token logits for every question."""

    def __init__(self, vocab: int, values: dict[int, float]):
        import torch

        self.config = SimpleNamespace(max_position_embeddings=100_000)
        self.row = torch.full((vocab,), -10.0)
        for token, value in values.items():
            self.row[token] = value

    def __call__(self, input_ids, **kwargs):
        return SimpleNamespace(logits=self.row.expand(input_ids.shape[0], 1, -1).clone(), past_key_values=None)


def test_scoring_on_hand_written_logits(tiny):
    _, tokenizer = tiny
    shared, (a, b, c, d) = letter_tokens(tokenizer)
    assert shared == [tokenizer.convert_tokens_to_ids("Ġ")]  # byte-level: " " then the letter
    newline = tokenizer.convert_tokens_to_ids("Ċ")
    # letters: C highest; over the whole vocabulary "\n" is higher still
    model = FixedLogits(len(tokenizer), {a: 1.0, b: 2.0, c: 3.0, d: -1.0, newline: 5.0})
    engine = SimpleNamespace(tokenizer=tokenizer, model=model, device="cpu", batch_size=2, pad_id=0)
    items = [item(number=n, answer=n % 4) for n in range(6)]
    dev = [MMLUItem(f"mmlu/dev/anatomy/{n}", "S?", ("A",), "anatomy", ("1", "2", "3", "4"), 0) for n in range(5)]
    task = MMLU(reuse_prefix=False)
    scores, outputs = task.evaluate(engine, items, dev, Settings())
    assert outputs == ["C"] * 6 and scores == [float(i.answers[0] == "C") for i in items]
    scores, outputs = task.evaluate(engine, items, dev, Settings(protocol="kick"))
    assert outputs == ["\n"] * 6 and scores == [0.0] * 6  # kick takes the greedy token, whatever it is
    model.row[newline] = -10.0
    scores, outputs = task.evaluate(engine, items, dev, Settings(protocol="kick"))
    assert outputs == ["C"] * 6 and scores == [float(i.answers[0] == "C") for i in items]


@pytest.mark.parametrize("output, score", [(" B", 1.0), ("B", 1.0), ("\nB", 1.0), ("B.", 0.0), ("b", 0.0), ("", 0.0)])
def test_kick_score_is_the_last_character(output, score):
    assert MMLU().score(item(answer=1), None, output, Settings(protocol="kick")) == score


def test_strict_prediction_is_the_first_best_letter(tiny):
    _, tokenizer = tiny
    readouts = [Readout((0.5, 2.0, 2.0, 1.0), 0, 5, True), Readout((3.0, 3.0, 3.0, 3.0), 0, 5, True)]
    assert MMLU.predictions(tokenizer, readouts, "strict") == ["B", "A"]
    assert MMLU.predictions(tokenizer, readouts, "kick") == ["<pad>"[:0]] * 2  # token 0 is <pad>: decodes to ""


def test_details_per_category():
    items = [item("anatomy", 0), item("anatomy", 1), item("philosophy", 0), item("astronomy", 0)]
    figures = MMLU().details(items, [1.0, 0.0, 1.0, 0.0], ["A"] * 4)
    assert figures == {"STEM": 0.0, "STEM n": 1.0, "humanities": 1.0, "humanities n": 1.0,
                       "other": 0.5, "other n": 2.0}


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
            lines = [f'"{subject} {split} {n}, with a comma\nand a newline?",a{n},b{n},c{n},d{n},{"ABCD"[n % 4]}'
                     for n in range(rows if split == "test" else 5)]
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

    rows = {"test": [{"question": "q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 3}] * 2,
            "dev": [{"question": "s?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 0}]}
    monkeypatch.setattr(mmlu, "hub_rows", lambda path, name, split, notify=None:
                        (rows[split], f"hub:{path}/{name}@{split}", f"fp-{split}"))
    dataset = MMLU().load(Settings(data_dir=Path("/nonexistent")))
    assert [i.id for i in dataset.examples] == ["mmlu/test/anatomy/0", "mmlu/test/anatomy/1"]
    assert dataset.examples[0].answers == ("D",) and dataset.dev[0].id == "mmlu/dev/anatomy/0"
    assert dataset.source == "hub:cais/mmlu/all@test+hub:cais/mmlu/all@dev"


# --- context fitting and prefix reuse on the tiny random LLaMA ------------------------------------


def test_shots_are_dropped_from_the_last_until_the_prompt_fits(tiny, bundled, monkeypatch):
    _, dataset, dev = bundled
    model, tokenizer = tiny
    target = dataset.examples[0]
    shots = dev[target.subject]
    # byte-level tokenizer without BOS: one token per byte; strict feeds " " after "Answer:" and keeps one
    # position for the letter, so a prompt of n bytes needs a context of n + 2.
    sizes = [len((format_prefix(target.subject, shots[:k]) + format_question(target)).encode()) for k in range(6)]
    engine = Engine(model, tokenizer, "cpu", batch_size=2)
    task = MMLU()
    for context, expected in [(sizes[2] + 2, 2), (sizes[2] + 1, 1), (sizes[5] + 2, 5), (sizes[0] + 2, 0)]:
        monkeypatch.setattr(model.config, "max_position_embeddings", context)
        [readout] = task.readouts(engine, [target], shots, Settings())
        assert (readout.shots, readout.truncated) == (expected, False), context
        assert task.shots_used == {target.id: expected}
    monkeypatch.setattr(model.config, "max_position_embeddings", sizes[0])  # too long even without shots
    [readout] = task.readouts(engine, [target], shots, Settings())
    assert (readout.shots, readout.truncated) == (0, True)


@pytest.mark.parametrize("protocol, batch_size", [("strict", 1), ("strict", 3), ("kick", 3)])
def test_prefix_reuse_matches_full_prompts_on_tiny_llama(tiny, bundled, monkeypatch, protocol, batch_size):
    """Same logits (1e-4), greedy tokens, predictions and accuracy with and without the cached prefix; the
    items span subjects, shot counts dropped to fit a 600-token context, and one truncated question."""
    _, dataset, dev = bundled
    items = pick(dataset, {"abstract_algebra": 4, "miscellaneous": 4, "professional_law": 1})
    model, tokenizer = tiny
    monkeypatch.setattr(model.config, "max_position_embeddings", 600)
    engine = Engine(model, tokenizer, "cpu", batch_size=batch_size)
    settings_ = Settings(protocol=protocol)
    shots = [s for subject in ("abstract_algebra", "miscellaneous", "professional_law") for s in dev[subject]]
    task = MMLU()
    reused = task.readouts(engine, items, shots, settings_, reuse=True)
    stats = dict(task.last_run)
    full = task.readouts(engine, items, shots, settings_, reuse=False)
    assert stats["reused"] == 8 and stats["truncated"] == 1 and task.last_run["reused"] == 0
    assert len({(i.subject, r.shots) for i, r in zip(items, reused)}) > 3  # several cached prefixes
    for a, b in zip(reused, full):
        assert a.greedy == b.greedy and (a.shots, a.truncated) == (b.shots, b.truncated)
        assert max(abs(x - y) for x, y in zip(a.choice_logits, b.choice_logits)) < 1e-4
    on, off = (MMLU.predictions(tokenizer, r, protocol) for r in (reused, full))
    assert on == off
    assert [task.score(i, None, o, settings_) for i, o in zip(items, on)] == [
        task.score(i, None, o, settings_) for i, o in zip(items, off)]


def test_evaluate_follows_reuse_prefix(tiny, bundled):
    _, dataset, dev = bundled
    items = pick(dataset, {"miscellaneous": 2})
    engine = Engine(*tiny, "cpu", batch_size=2)
    on, off = MMLU(reuse_prefix=True), MMLU(reuse_prefix=False)
    assert on.evaluate(engine, items, dev["miscellaneous"], Settings(shots=1)) == off.evaluate(
        engine, items, dev["miscellaneous"], Settings(shots=1))
    assert on.last_run["reused"] == 2 and off.last_run["reused"] == 0
    assert on.details(items, [1.0, 0.0], ["A", "B"]) == {"other": 0.5, "other n": 2.0}


# --- SmolLM2-135M --------------------------------------------------------------------------------


@pytest.mark.slow
def test_prefix_reuse_matches_full_prompts_on_smollm2(smollm2, bundled):
    _, dataset, dev = bundled
    items = pick(dataset, {"astronomy": 2, "marketing": 2})
    engine = Engine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=4)
    settings_ = Settings(shots=1)
    shots = [*dev["astronomy"], *dev["marketing"]]
    task = MMLU()
    # SmolLM2 merges the prefix's final "\n\n" into one token alone, two before a question: the cached
    # prefix stops one token short, and every question still runs on it.
    prefix = format_prefix("astronomy", dev["astronomy"][:1])
    alone = smollm2.tokenizer(prefix)["input_ids"]
    joined = smollm2.tokenizer(prefix + format_question(items[0]))["input_ids"]
    assert joined[:len(alone) - 1] == alone[:-1]
    reused = task.readouts(engine, items, shots, settings_, reuse=True)
    assert task.last_run["reused"] == 4
    full = task.readouts(engine, items, shots, settings_, reuse=False)
    for a, b in zip(reused, full):
        assert a.greedy == b.greedy
        assert max(abs(x - y) for x, y in zip(a.choice_logits, b.choice_logits)) < 1e-4
    # " A" is one token here, so strict and kick read the same position: one pair of runs serves both
    assert letter_tokens(smollm2.tokenizer)[0] == []
    for protocol in ("strict", "kick"):
        on = MMLU.predictions(smollm2.tokenizer, reused, protocol)
        off = MMLU.predictions(smollm2.tokenizer, full, protocol)
        assert on == off
        scores = [task.score(i, None, o, Settings(protocol=protocol)) for i, o in zip(items, on)]
        assert scores == [task.score(i, None, o, Settings(protocol=protocol)) for i, o in zip(items, off)]
