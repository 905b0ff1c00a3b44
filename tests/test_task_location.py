"""A registered task's skips and errors point at where the user declared it (its task file and line, the class
its hook registers), not at the plugin's generic suite file."""

import json

from test_finite import NAN_TASK
from test_user_tasks import TINY as USER_TINY

TINY = [*USER_TINY, "-rs"]
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


def test_a_failing_hook_task_names_the_class_that_declares_it(pytester):
    pytester.makeconftest(NAN_TASK)
    result = pytester.runpytest(*TINY, "--kick-tasks", "nan_scores")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "nan_scores on tiny-random-llama dense: item q2 scored nan" in out
    conftest = pytester.path / "conftest.py"
    line = conftest.read_text().splitlines().index("class Scores(OneRequestPerItem):") + 1
    assert out.count(f"(task nan_scores, declared at {conftest}:{line})") == 2, out
