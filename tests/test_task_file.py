"""Declarative tasks (--kick-task-file / kick_task_file): multiple choice with any number of choices, generation,
perplexity; every malformed file is a one-line usage error naming the file, the line and the key."""

import json
import textwrap
from pathlib import Path

import pytest

from pytest_kick.api import MultipleChoice, Settings
from pytest_kick.errors import KickError
from pytest_kick.tasks import declarative

TINY = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-compressor",
    "magnitude",
    "--kick-ratio",
    "0.5",
    "-p",
    "no:cacheprovider",
]

MC_YAML = """\
tasks:
  - name: truthy_mc
    type: multiple_choice
    data: truthy.jsonl
    template: "Q: {question}\\nA:"
    choices: choices
    answer: label
"""


def mc_rows():
    """Four items each with 3, 4 and 5 choices; answers given as index, text and letter."""
    rows = []
    for k in range(12):
        n = 3 + k % 3
        choices = [f"option {k}-{c}" for c in range(n)]
        label = [k % n, choices[(k + 1) % n], "ABCDE"[(k + 2) % n]][k % 3]
        rows.append({"question": f"which option is right for question {k}?", "choices": choices, "label": label})
    return rows


@pytest.fixture
def mc_files(tmp_path):
    (tmp_path / "truthy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc_rows()))
    (tmp_path / "tasks.yaml").write_text(MC_YAML)
    return tmp_path


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


BAD = [
    (
        "tasks:\n  - name: x\n    type: multiple_choice\n    data: truthy.jsonl\n    choise: c\n",
        5,
        "choise",
        "unknown key",
    ),
    ("tasks:\n  - name: x\n    type: multi\n    data: truthy.jsonl\n", 3, "type", "'multi' is not one of"),
    ("tasks:\n  - name: x\n    type: multiple_choice\n", 2, "data", "missing"),
    ("tasks:\n  - name: x\n    type: multiple_choice\n    data: nowhere.jsonl\n", 4, "data", "no such file"),
    (
        "tasks:\n  - name: x\n    type: multiple_choice\n    data: truthy.jsonl\n    shots: many\n",
        5,
        "shots",
        "not a whole number",
    ),
    (
        "tasks:\n  - name: x\n    type: generation\n    data: truthy.jsonl\n    metric: bleu\n",
        5,
        "metric",
        "'bleu' is not one of",
    ),
    ("tasks:\n  - name: x y\n    type: multiple_choice\n    data: truthy.jsonl\n", 2, "name", "not a task name"),
    ("tasks:\n  - name: x\n    type: [oops\n", 4, None, "not valid YAML"),
    (
        "tasks:\n  - name: x\n    type: multiple_choice\n    data: truthy.jsonl\n    header: 'About {s|title}'\n",
        5,
        "header",
        "unknown filter 'title'",
    ),
    (
        "tasks:\n  - name: x\n    type: multiple_choice\n    data: truthy.jsonl\n    shots_by: subject\n",
        5,
        "shots_by",
        "needs shots_from",
    ),
    (
        "tasks:\n  - name: x\n    type: multiple_choice\n    data: truthy.jsonl\n    shots_from: dev.jsonl\n",
        5,
        "shots_from",
        "no such file",
    ),
    (
        "tasks:\n  - name: x\n    type: multiple_choice\n    data: truthy.jsonl\n    labels: AAB\n",
        5,
        "labels",
        "must be distinct",
    ),
]


@pytest.mark.parametrize("text, line, key, message", BAD)
def test_every_malformed_task_file_gives_one_line_naming_file_key_and_line(
    pytester, mc_files, text, line, key, message
):
    (pytester.path / "truthy.jsonl").write_text((mc_files / "truthy.jsonl").read_text())
    (pytester.path / "bad.yaml").write_text(text)
    result = pytester.runpytest(*TINY, "--kick-task-file", "bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [ln for ln in result.stderr.str().splitlines() if "pytest-kick" in ln]
    assert len(lines) == 1 and "Traceback" not in result.stderr.str()
    assert f"bad.yaml:{line}: " + (f"{key}: " if key else "") in lines[0] and message in lines[0], lines[0]


def test_a_bad_record_in_the_data_file_names_the_data_file_and_its_line(tmp_path):
    (tmp_path / "d.jsonl").write_text(
        '{"question": "q", "choices": ["a", "b"], "label": 0}\n{"question": "q", "choices": ["a"], "label": 0}\n'
    )
    (tmp_path / "t.yaml").write_text("name: x\ntype: multiple_choice\ndata: d.jsonl\nanswer: label\n")
    with pytest.raises(KickError, match=r"d\.jsonl:2: an item needs at least 2 choices"):
        declarative.load(tmp_path / "t.yaml")


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


def test_parquet_data_gives_the_same_items_as_jsonl(mc_files):
    import pyarrow
    import pyarrow.parquet

    rows = [dict(r, label=str(r["label"])) for r in mc_rows()]  # a Parquet column holds one type
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), mc_files / "truthy.parquet")
    (mc_files / "jsonl.yaml").write_text(MC_YAML.replace("truthy_mc", "from_jsonl"))
    (mc_files / "parquet.yaml").write_text(MC_YAML.replace("truthy.jsonl", "truthy.parquet"))
    [from_jsonl], [from_parquet] = (
        declarative.load(mc_files / "jsonl.yaml"),
        declarative.load(mc_files / "parquet.yaml"),
    )
    jsonl_items = from_jsonl.split(from_jsonl.load(Settings()), Settings())[1]
    parquet_items = from_parquet.split(from_parquet.load(Settings()), Settings())[1]
    assert [(i.question, i.choices, i.label) for i in parquet_items] == [
        (i.question, i.choices, i.label) for i in jsonl_items
    ]
    assert [len(i.choices) for i in parquet_items] == [3, 4, 5] * 4


def test_parquet_without_datasets_is_one_error_naming_the_file(mc_files, monkeypatch):
    (mc_files / "truthy.parquet").write_bytes(b"PAR1")
    (mc_files / "parquet.yaml").write_text(MC_YAML.replace("truthy.jsonl", "truthy.parquet"))
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)  # as if datasets were not installed
    with pytest.raises(KickError) as err:
        declarative.load(mc_files / "parquet.yaml")
    assert str(err.value).startswith(f"{mc_files / 'truthy.parquet'}: reading Parquet needs the datasets package")
    assert "\n" not in str(err.value)


def test_kick_shots_is_used_only_by_tasks_that_take_it(mc_files):
    from pytest_kick.tasks import get
    from pytest_kick.tasks.probe import uses_shots

    [task] = declarative.load(mc_files / "tasks.yaml")
    assert not uses_shots(task, task.load(Settings()), Settings(shots=2))  # its shots come from its file
    for name, used in (("factoid_qa", True), ("mmlu", True), ("summarization:small", False), ("perplexity", False)):
        bundled = get(name)
        assert uses_shots(bundled, bundled.load(Settings()), Settings(shots=2)) is used, name


def test_kick_shots_for_a_task_without_it_is_a_note_and_removes_no_item(pytester, mc_files):
    for name in ("truthy.jsonl", "tasks.yaml"):
        (pytester.path / name).write_text((mc_files / name).read_text())
    result = pytester.runpytest(
        *TINY,
        "--kick-task-file",
        "tasks.yaml",
        "--kick-tasks",
        "truthy_mc",
        "-rs",
        "--kick-shots",
        "2",
        "--kick-report",
        "r.json",
    )
    out = result.stdout.str()
    notes = [ln for ln in out.splitlines() if "--kick-shots 2 does not apply to truthy_mc" in ln]
    assert notes and all(ln.count("--kick-shots") == 1 for ln in notes), out
    assert "try --kick-shots" not in out  # no hint to change a setting the task does not use
    report = json.loads((pytester.path / "r.json").read_text())
    assert all(c["n"] == 12 for c in report["cases"])  # every item evaluated: none set aside as shots


def test_a_bad_record_after_a_string_holding_u0085_names_its_own_line(tmp_path):
    (tmp_path / "d.jsonl").write_text(
        '{"question": "a\u0085b", "choices": ["a", "b"], "label": 0}\n'
        '{"question": "q", "choices": ["a"], "label": 0}\n',
        encoding="utf-8",
    )
    (tmp_path / "t.yaml").write_text("name: x\ntype: multiple_choice\ndata: d.jsonl\nanswer: label\n")
    with pytest.raises(KickError, match=r"d\.jsonl:2: an item needs at least 2 choices"):
        declarative.load(tmp_path / "t.yaml")


def test_generation_shots_from_another_file_grouped_by_a_field_with_a_header(tmp_path):
    (tmp_path / "qa.jsonl").write_text(
        '{"q": "2+2?", "a": "4", "topic": "math"}\n{"q": "Capital of Peru?", "a": "Lima", "topic": "geo"}\n'
    )
    (tmp_path / "dev.jsonl").write_text(
        '{"q": "1+1?", "a": "2", "topic": "math"}\n'
        '{"q": "Capital of Chile?", "a": "Santiago", "topic": "geo"}\n'
        '{"q": "3+3?", "a": "6", "topic": "math"}\n'
    )
    (tmp_path / "t.yaml").write_text(
        textwrap.dedent("""\
        {name: qa, type: generation, data: qa.jsonl, template: "Q: {q}\\nA:", answer: a, header: "{topic|upper}\\n",
         shots: 1, shots_from: dev.jsonl, shots_by: topic}
    """)
    )
    [qa] = declarative.load(tmp_path / "t.yaml")
    shots, items = qa.split(qa.load(Settings()), Settings())
    asked = []
    scores, _ = qa.evaluate(items, shots, Settings(), lambda reqs: asked.extend(reqs) or ["4", "Lima"])
    assert [r.prompt for r in asked] == [
        "MATH\nQ: 1+1?\nA: 2\n\nQ: 2+2?\nA:",
        "GEO\nQ: Capital of Chile?\nA: Santiago\n\nQ: Capital of Peru?\nA:",
    ]
    assert scores == [1.0, 1.0]
