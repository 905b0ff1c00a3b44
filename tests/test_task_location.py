"""A registered task's skips and errors point at where the user declared it (its task file and line, the class
its hook registers), not at the plugin's generic suite file."""

import json

TINY = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-compressor",
    "magnitude",
    "--kick-ratio",
    "0.5",
    "-p",
    "no:cacheprovider",
    "-rs",
]
ROWS = [
    {"question": f"What is {i} plus one?", "choices": [str(i + 1), str(i + 7), "none"], "label": 0} for i in range(10)
]
TASK_FILE = """# two tasks; the second is the one run
tasks:
  - name: other
    type: multiple_choice
    data: qa.jsonl
    template: "{question}"
    answer: label
  - name: sums
    type: multiple_choice
    data: qa.jsonl
    template: "Q: {question}\\nA:"
    answer: label
"""


def test_an_inconclusive_file_task_is_skipped_at_its_task_file_line(pytester):
    (pytester.path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (pytester.path / "tasks.yaml").write_text(TASK_FILE)
    result = pytester.runpytest(*TINY, "--kick-task-file", "tasks.yaml", "--kick-tasks", "sums")
    result.assert_outcomes(skipped=2)
    out = result.stdout.str()
    assert out.count("SKIPPED [1] tasks.yaml:8: sums: inconclusive: dense tiny-random-llama scores") == 2, out
    assert "test_registered.py:" not in out


HOOK_TASK = """
from pytest_kick.api import Dataset, Example, LoglikelihoodRequest, OneRequestPerItem, subset, text_hash


class Broken(OneRequestPerItem):
    name = family = "broken"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.5

    def load(self, settings):
        return Dataset(tuple(Example(f"q{k}", f"question {k}", ("a",)) for k in range(6)), "test", "0")

    def split(self, dataset, settings):
        return [], subset(dataset.examples, settings.limit, settings.seed, self.name)

    def template_hash(self, settings):
        return text_hash("broken")

    def requests(self, items, shots, settings):
        return [LoglikelihoodRequest(i.question, " a") for i in items]

    def score(self, item, request, answer, settings):
        return float("nan") if item.id == "q3" else 1.0


def pytest_kick_tasks(config):
    return [Broken()]
"""


def test_a_failing_hook_task_names_the_class_that_declares_it(pytester):
    pytester.makeconftest(HOOK_TASK)
    result = pytester.runpytest(*TINY, "--kick-tasks", "broken")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "broken on tiny-random-llama dense: item q3 scored nan" in out
    conftest = pytester.path / "conftest.py"
    line = conftest.read_text().splitlines().index("class Broken(OneRequestPerItem):") + 1
    assert out.count(f"(task broken, declared at {conftest}:{line})") == 2, out
