"""Declarative tasks: every malformed file is a one-line usage error naming the file, the line and the key; data
records, Parquet data, and shots (--kick-shots, shots_from / shots_by)."""

import json
import textwrap

import pytest
import task_file_helpers
from task_file_helpers import MC_YAML, TINY, mc_rows

from pytest_kick.api import Settings
from pytest_kick.errors import KickError
from pytest_kick.tasks import declarative

mc_files = task_file_helpers.mc_files  # the fixture


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


def test_a_bad_record_after_a_string_holding_u0085_names_its_own_line(tmp_path):
    (tmp_path / "d.jsonl").write_text(
        '{"question": "a\u0085b", "choices": ["a", "b"], "label": 0}\n'
        '{"question": "q", "choices": ["a"], "label": 0}\n',
        encoding="utf-8",
    )
    (tmp_path / "t.yaml").write_text("name: x\ntype: multiple_choice\ndata: d.jsonl\nanswer: label\n")
    with pytest.raises(KickError, match=r"d\.jsonl:2: an item needs at least 2 choices"):
        declarative.load(tmp_path / "t.yaml")


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
