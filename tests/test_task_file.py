"""Declarative tasks (--kick-task-file / kick_task_file): multiple choice with any number of choices, generation,
perplexity, the docs' example, and the flip report of choices. Malformed files, data formats and shots are in
test_task_file_data.py."""

import json
import textwrap
from pathlib import Path

import pytest
import task_file_helpers
from task_file_helpers import TINY, mc_rows  # TINY: test_task_file_shapes imports it from here

from pytest_kick.api import MultipleChoice, Settings
from pytest_kick.tasks import declarative

mc_files = task_file_helpers.mc_files  # the fixture


def test_multiple_choice_items_keep_their_choice_count_answer_and_chance(mc_files):
    [task] = declarative.load(mc_files / "tasks.yaml")
    assert isinstance(task, MultipleChoice) and task.name == "truthy_mc"
    dataset = task.load(Settings())
    _, items = task.split(dataset, Settings())
    assert [len(i.choices) for i in items] == [3, 4, 5] * 4
    rows = mc_rows()
    assert [i.answers[0] for i in items][:3] == [rows[0]["choices"][0], rows[1]["label"], rows[2]["choices"][4]]
    assert [task.chance(i) for i in items[:3]] == [1 / 3, 1 / 4, 1 / 5]
    assert task.floor == pytest.approx((1 / 3 + 1 / 4 + 1 / 5) / 3)
    assert items[0].question == "Q: which option is right for question 0?\nA:"


def test_multiple_choice_scores_the_most_likely_choice(tmp_path):
    (tmp_path / "one.jsonl").write_text('{"question": "q0", "choices": ["x", "y"], "answer": "x"}\n')
    mc = MultipleChoice("m", tmp_path / "one.jsonl", template="{question}")  # scored on other items than its own
    from pytest_kick.tasks.file_task import ChoiceItem

    items = [ChoiceItem("a", "q1", ("x",), ("x", "y", "z"), 0), ChoiceItem("b", "q2", ("w",), ("u", "v", "w", "t"), 2)]
    asked = []

    def run(requests):
        asked.extend(requests)
        return [(-1.0, False), (-0.5, True), (-3.0, False), (-2.0, False), (-4.0, False), (-1.0, True), (-9.0, False)]

    scores, outputs = mc.evaluate(items, [], Settings(), run)
    assert [r.continuation for r in asked] == [" x", " y", " z", " u", " v", " w", " t"]
    assert scores == [0.0, 1.0] and outputs == ["y", "w"]


def test_yaml_multiple_choice_task_runs_end_to_end(pytester, mc_files):
    for name in ("truthy.jsonl", "tasks.yaml"):
        (pytester.path / name).write_text((mc_files / name).read_text())
    result = pytester.runpytest(
        *TINY, "--kick-task-file", "tasks.yaml", "--kick-tasks", "truthy_mc", "-v", "--kick-report", "r.json", "-rs"
    )
    # a random model sits at chance (the mean of 1/3, 1/4, 1/5, printed rounded): inconclusive, never passed
    result.stdout.fnmatch_lines(
        [
            "*test_registered[[]tiny-random-llama-dense[]] SKIPPED*",
            "*truthy_mc: inconclusive: dense tiny-random-llama scores * (n=12), not "
            "significantly above the task's chance level (0.261 (mean of per-item chance 0.2-0.333))*",
        ]
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()
    report = json.loads((pytester.path / "r.json").read_text())
    assert {c["task"] for c in report["cases"]} == {"truthy_mc"}
    assert all(c["n"] == 12 for c in report["cases"])
    assert report["meta"]["tasks"]["truthy_mc"]["floor"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 5) / 3)


def test_ini_key_and_toml_file(pytester, mc_files):
    (pytester.path / "truthy.jsonl").write_text((mc_files / "truthy.jsonl").read_text())
    (pytester.path / "tasks.toml").write_text(
        textwrap.dedent("""\
        [[tasks]]
        name = "truthy_mc"
        type = "multiple_choice"
        data = "truthy.jsonl"
        template = "Q: {question}\\nA:"
        answer = "label"
    """)
    )
    pytester.makeini("[pytest]\nkick_task_file = tasks.toml\n")
    result = pytester.runpytest(*TINY, "--kick-tasks", "truthy_mc", "--collect-only", "-q")
    assert "test_registered[tiny-random-llama-magnitude-0.5]" in result.stdout.str(), result.stderr.str()


def test_generation_and_perplexity_tasks_from_yaml(tmp_path):
    (tmp_path / "qa.csv").write_text("q,a\nWhat is 2+2?,four\nCapital of France?,Paris\nColour of snow?,white\n")
    (tmp_path / "notes.txt").write_text("First paragraph of text.\n\nSecond paragraph here.\n")
    (tmp_path / "t.yaml").write_text(
        textwrap.dedent("""\
        tasks:
          - {name: qa, type: generation, data: qa.csv, template: "Q: {q}\\nA:", answer: a, metric: exact}
          - {name: notes_ppl, type: perplexity, data: notes.txt, window: 64}
    """)
    )
    qa, ppl = declarative.load(tmp_path / "t.yaml")
    _, items = qa.split(qa.load(Settings()), Settings())
    assert [i.question for i in items][0] == "Q: What is 2+2?\nA:"
    assert (
        qa.score(items[1], None, " paris.", Settings()) == 1.0 and qa.score(items[1], None, "Lyon", Settings()) == 0.0
    )
    scores, _ = ppl.evaluate(ppl.load(Settings()).examples, [], Settings(), lambda reqs: [(-1.0, -3.0)] * len(reqs))
    assert scores == [2.0, 2.0] and ppl.figure(2.0) > 7


def _readme_examples():
    """The YAML and the Python example of the "Add your own task" section of docs/tasks.md (the README's,
    before the reference moved into docs/)."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "tasks.md").read_text(encoding="utf-8")
    section = text.split("\n## Add your own task", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1), re.search(
        r"```python\n(.*?)```", section, re.S
    ).group(1)


@pytest.mark.parametrize("form", ["yaml", "python"])
def test_readme_examples_register_the_task_in_under_20_lines(pytester, form):
    yaml_text, python_text = _readme_examples()
    assert len((yaml_text if form == "yaml" else python_text).splitlines()) < 20
    sample = Path(__file__).parent / "data" / "truthfulqa_generation_sample.jsonl"  # real TruthfulQA records
    (pytester.path / "truthfulqa.jsonl").write_text(sample.read_text(encoding="utf-8"), encoding="utf-8")
    if form == "yaml":
        (pytester.path / "truthfulqa.yaml").write_text(yaml_text)
        args = ["--kick-task-file", "truthfulqa.yaml"]
    else:
        pytester.makeconftest(python_text)
        args = []
    result = pytester.runpytest(*TINY, *args, "--kick-tasks", "truthfulqa_mc1", "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_registered.py::test_registered[tiny-random-llama-dense]" in out, out + result.stderr.str()
    assert "test_registered.py::test_registered[tiny-random-llama-magnitude-0.5]" in out


def test_flip_report_shows_the_choices_and_the_correct_one_apart(mc_files, tmp_path):
    from types import SimpleNamespace

    from pytest_kick import tasks
    from pytest_kick.baseline import TaskResult
    from pytest_kick.runtime import KickCase, Runtime

    [task] = declarative.load(mc_files / "tasks.yaml")
    _, items = task.split(task.load(Settings()), Settings())
    runtime = Runtime.__new__(Runtime)
    runtime.config, runtime._data = (
        SimpleNamespace(cache_dir=tmp_path / "cache", judge="rouge"),
        {task.name: (None, [], items)},
    )
    ids = [i.id for i in items[:3]]
    dense = TaskResult(task.name, "accuracy", ids, [1.0, 1.0, 0.0], [items[0].answers[0], items[1].answers[0], "x"])
    compressed = TaskResult(task.name, "accuracy", ids, [0.0, 1.0, 0.0], ["option 0-1", items[1].answers[0], "y"])
    tasks.use([(task, "test")])
    try:
        path = runtime.write_flips(KickCase(task.name, "tiny-random-llama", "magnitude", "0.5"), dense, compressed)
    finally:
        tasks.use([])
    [flip] = [json.loads(line) for line in path.read_text().splitlines()]
    assert flip["id"] == ids[0] and flip["change"] == "lost"
    assert flip["choices"] == ["option 0-0", "option 0-1", "option 0-2"] and flip["correct"] == "option 0-0"
    assert flip["dense_output"] == "option 0-0" and flip["compressed_output"] == "option 0-1"


def test_flip_fields_of_lettered_choices_and_of_mmlu_items():
    from pytest_kick.tasks.file_task import ChoiceItem
    from pytest_kick.tasks.flips import item_fields
    from pytest_kick.tasks.mmlu_data import MMLUItem

    lettered = ChoiceItem("a", "Q?\nA. x\nB. y\nAnswer:", ("y",), ("x", "y"), 1, (), ("A", "B"))
    assert item_fields(lettered)["choices"] == ["A. x", "B. y"] and item_fields(lettered)["correct"] == "B. y"
    mmlu = MMLUItem("m", "2+2?", ("C",), "math", ("1", "2", "4", "8"), 2)
    assert item_fields(mmlu) == {
        "question": "2+2?",
        "answers": ["C"],
        "choices": ["A. 1", "B. 2", "C. 4", "D. 8"],
        "correct": "C. 4",
    }
    assert "choices" not in item_fields(SimpleItem("g", "who?", ("me",)))


class SimpleItem:
    def __init__(self, id, question, answers):
        self.id, self.question, self.answers = id, question, answers
