"""MMLU: the Hendrycks prompt, shots that fit the context, stratified subsets and both scoring protocols through
requests. Data loading is in test_mmlu_data.py; context fitting and the engine's prefix reuse (tiny random LLaMA
and SmolLM2-135M) in test_mmlu_prefix.py."""

import collections

import mmlu_helpers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmlu_helpers import item

from pytest_kick.engines.base import Runner
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import (
    CATEGORIES,
    MMLU,
    SUBJECT_CATEGORY,
    MMLUItem,
    format_prefix,
    stratified_subset,
)

offline, one_thread, bundled = mmlu_helpers.offline, mmlu_helpers.one_thread, mmlu_helpers.bundled  # the fixtures


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
