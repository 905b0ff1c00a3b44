"""The sequential gate in a real session on tiny-random-llama: a planted broken variant stops early, reports the
items it used out of its budget and the bound at the stop; --kick-plan prints the budget before anything runs."""

import json

import pytest

# A task scoring agreement with the dense model's own greedy answer: the dense run keeps its answers in a file
# and scores 1.0 on every item; a compressed model scores 1.0 where it still answers the same. Heavy magnitude
# pruning of a random model changes nearly every answer: a broken variant, planted.
AGREEMENT_TASK = """
import json
from pathlib import Path
from pytest_kick.api import Dataset, Example, GenerationRequest, OneRequestPerItem, subset, text_hash

ANSWERS = Path(__file__).parent / "dense_answers.json"

class Agreement(OneRequestPerItem):
    name = family = "agreement"
    version = "1"
    metric = "agreement"
    higher_is_better = True
    floor = 0.0
    score_range = (0.0, 1.0)

    def load(self, settings):
        words = ["apple", "river", "castle", "violin", "pepper", "tiger", "comet", "lantern", "meadow", "harbor"]
        texts = [f"Item {k}: {words[k % 10]} {words[(k * 7) % 10]}" for k in range(200)]
        examples = tuple(Example(f"a{k}", text, ("",)) for k, text in enumerate(texts))
        return Dataset(examples, "generated", "agreement-v1")

    def split(self, dataset, settings):
        return [], subset(dataset.examples, settings.limit, settings.seed, self.name)

    def template_hash(self, settings):
        return text_hash("{q}")

    def requests(self, items, shots, settings):
        return [GenerationRequest(i.question, 3) for i in items]

    def score(self, item, request, answer, settings):
        known = json.loads(ANSWERS.read_text()) if ANSWERS.exists() else {}
        if item.id not in known:  # the dense run (it is evaluated first): its answer is the reference
            known[item.id] = answer
            ANSWERS.write_text(json.dumps(known))
            return 1.0
        return float(known[item.id] == answer)


def pytest_kick_tasks(config):
    return [Agreement()]
"""

ARGS = ["--kick-model", "tiny-random-llama", "--kick-tasks", "agreement", "-p", "no:cacheprovider"]


@pytest.fixture
def agreement(pytester):
    pytester.makeconftest(AGREEMENT_TASK)
    return pytester


def test_a_broken_variant_stops_early_with_its_items_used(agreement):
    result = agreement.runpytest(
        *ARGS, "--kick-compressor", "magnitude", "--kick-ratio", "0.9", "--kick-report", "report.json", "-rA"
    )
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "not matching shown on 32 of 200 items: drop >=" in out
    assert "verdicts: --kick-stat sequential, each decision's error <= alpha 0.05 per case" in out
    cases = {c["compressor"]: c for c in json.loads((agreement.path / "report.json").read_text())["cases"]}
    broken = cases["magnitude"]
    assert broken["verdict"] == "not matching"
    assert (broken["items_used"], broken["budget"], broken["n"]) == (32, 200, 200)
    assert broken["bound_low"] > 0.05 and broken["alpha"] == 0.05 and broken["family"] == "case"
    flips = [json.loads(line) for line in (agreement.path / ".kick" / "reports").rglob("*.jsonl").__next__().open()]
    assert 0 < len(flips) <= 32  # only items it evaluated can have flipped


def test_session_family_splits_alpha(agreement):
    result = agreement.runpytest(
        *ARGS,
        "--kick-compressor",
        "magnitude",
        "--kick-ratio",
        "0.9,0.5",
        "--kick-family",
        "session",
        "--kick-report",
        "report.json",
    )
    report = json.loads((agreement.path / "report.json").read_text())
    alphas = {c["alpha"] for c in report["cases"] if c["compressor"] != "dense"}
    assert alphas == {0.025}  # two compressed cases share alpha 0.05
    assert "split over the session's compressed cases (--kick-family session)" in result.stdout.str()


def test_plan_prints_budget_and_smallest_drop_before_running(agreement):
    result = agreement.runpytest(*ARGS, "--kick-ratio", "0.5", "--kick-limit", "100", "--kick-plan", "--co")
    out = result.stdout.str()
    assert "pytest-kick plan: --kick-stat sequential, alpha 0.05 per decision (--kick-family case)" in out
    assert "tiny-random-llama agreement: 100 items (rounds 32, 64, 100); default dense 0.500" in out
    assert "with 80% power" in out


UNDECIDED_TEST = """
import pytest
from pytest_kick.baseline import TaskResult

@pytest.mark.kick_task("factoid_qa")
def test_factoid_qa(kick_case, kick_gate):
    ids = [f"q{k}" for k in range(40)]
    dense = TaskResult("factoid_qa", "accuracy", ids, [1.0, 0.0] * 20, ["x"] * 40)
    one_lost = TaskResult("factoid_qa", "accuracy", ids, [0.0, 0.0] + [1.0, 0.0] * 19, ["y"] * 40)
    kick_gate(kick_case, dense, dense if kick_case.is_dense else one_lost)
"""


@pytest.mark.parametrize("rule, outcome", [("pass", "passed"), ("fail", "failed")])
def test_an_undecided_case_passes_with_a_warning_or_fails_when_asked(pytester, rule, outcome):
    pytester.makepyfile(test_undecided=UNDECIDED_TEST)
    args = ["--kick-model", "tiny-random-llama", "--kick-ratio", "0.5", "--kick-compressor", "magnitude"]
    result = pytester.runpytest(*args, "--kick-undecided", rule, "-p", "no:cacheprovider", "test_undecided.py")
    result.assert_outcomes(passed=2 if outcome == "passed" else 1, failed=0 if outcome == "passed" else 1)
    out = result.stdout.str()
    assert "undecided after all 40 items of the budget" in out
    assert "the smallest drop this budget could have shown is about" in out
