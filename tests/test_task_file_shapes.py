"""What a task file reads from its records: TruthfulQA's real shape (a string field and a list field mixed in
``choices``), a list or a mapping where text is needed (an error naming the data file, its line and the field,
never a Python repr in a prompt), ``shuffle`` (seeded per item, the label moved along, its own template hash),
and the one-line description of a multiple-choice task (choices per item, chance level)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_task_file import TINY, _readme_examples

from pytest_kick.api import MultipleChoice, Settings
from pytest_kick.errors import KickError
from pytest_kick.tasks import declarative
from pytest_kick.tasks.base import choices_summary

SAMPLE = Path(__file__).parent / "data" / "truthfulqa_generation_sample.jsonl"
ROWS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]

MC1 = """\
name: truthfulqa_mc1
type: multiple_choice
data: truthfulqa.jsonl
template: "Q: {question}\\nA:"
choices: [best_answer, incorrect_answers]
answer: best_answer
"""


def items_of(tmp_path, yaml_text, rows=None, name="t.yaml", data="truthfulqa.jsonl"):
    (tmp_path / data).write_text("".join(json.dumps(r) + "\n" for r in (rows or ROWS)), encoding="utf-8")
    (tmp_path / name).write_text(yaml_text)
    [task] = declarative.load(tmp_path / name)
    return task, task.split(task.load(Settings()), Settings())[1]


def test_the_sample_is_truthfulqa_generation_records():
    assert len(ROWS) == 25 and ROWS[0]["question"] == "What happens to you if you eat watermelon seeds?"
    for row in ROWS:
        assert set(row) == {
            "type",
            "category",
            "question",
            "best_answer",
            "correct_answers",
            "incorrect_answers",
            "source",
        }
        assert isinstance(row["best_answer"], str) and row["best_answer"] in row["correct_answers"]
        assert all(isinstance(a, str) and a for a in row["correct_answers"] + row["incorrect_answers"])


def test_truthfulqa_records_give_mc1_items_best_answer_against_every_incorrect_one(tmp_path):
    task, items = items_of(tmp_path, MC1)
    assert [len(i.choices) for i in items] == [1 + len(r["incorrect_answers"]) for r in ROWS]
    assert min(len(i.choices) for i in items) == 2 and max(len(i.choices) for i in items) == 8
    for item, row in zip(items, ROWS):
        assert item.choices == (row["best_answer"], *row["incorrect_answers"])
        assert item.label == 0 and item.answers == (row["best_answer"],)
        assert item.question == f"Q: {row['question']}\nA:"
    assert task.floor == pytest.approx(sum(1 / (1 + len(r["incorrect_answers"])) for r in ROWS) / len(ROWS))


def test_string_and_list_fields_flatten_in_order_and_empty_ones_are_left_out(tmp_path):
    rows = [
        {"q": "pick", "wrong": ["w1", "", "w2"], "other": "", "right": "r", "also": 7},
        {"q": "pick", "wrong": [], "other": "o", "right": "r", "also": "x"},
    ]
    yaml_text = (
        "name: m\ntype: multiple_choice\ndata: d.jsonl\ntemplate: '{q}'\nchoices: [wrong, other, right, also]\n"
        "answer: right\n"
    )
    _, items = items_of(tmp_path, yaml_text, rows, data="d.jsonl")
    assert items[0].choices == ("w1", "w2", "r", "7") and items[0].label == 2
    assert items[1].choices == ("o", "r", "x") and items[1].label == 1


def test_the_answer_field_among_the_choices_wins_over_reading_its_text_as_an_index(tmp_path):
    rows = [{"q": "2+2?", "right": "4", "wrong": ["3", "5", "22", "1"]}]  # "4" is no index here: it is the text
    yaml_text = (
        "name: m\ntype: multiple_choice\ndata: d.jsonl\ntemplate: '{q}'\nchoices: [wrong, right]\nanswer: right\n"
    )
    _, [item] = items_of(tmp_path, yaml_text, rows, data="d.jsonl")
    assert item.choices == ("3", "5", "22", "1", "4") and item.label == 4


def mc(answer="best_answer", choices="[best_answer, incorrect_answers]", template="Q: {question}\\nA:"):
    return (
        f'name: t\ntype: multiple_choice\ndata: truthfulqa.jsonl\ntemplate: "{template}"\nchoices: {choices}\n'
        f"answer: {answer}\n"
    )


def gen(answer="best_answer", template="Q: {question}\\nA:"):
    return f'name: t\ntype: generation\ndata: truthfulqa.jsonl\ntemplate: "{template}"\nanswer: {answer}\n'


def broken(row=2, **fields):
    """The sample with record ``row`` (1-based: its line) changed."""
    return [dict(r, **fields) if n == row else r for n, r in enumerate(ROWS, 1)]


WRONG = [
    (mc(answer="correct_answers"), ROWS, 1, "field 'correct_answers' is a list; answer: names the field"),
    (mc(), broken(question=["What", "is", "it?"]), 2, "field 'question' is a list; a template field needs text"),
    (mc(), broken(row=3, question={"en": "What?"}), 3, "field 'question' is a mapping; a template field needs text"),
    (mc(template="{category}: {question}"), broken(row=4, category=None), 4, "field 'category' is null;"),
    (
        mc(choices="incorrect_answers", answer="label"),
        [dict(r, label=0) for r in broken(incorrect_answers="die")],
        2,
        "field 'incorrect_answers' is a string; choices: names a field holding a list of choices",
    ),
    (mc(choices="best_answer"), ROWS, 1, "field 'best_answer' is a string; choices:"),
    (mc(), broken(row=5, incorrect_answers=["a", ["b", "c"]]), 5, "field 'incorrect_answers[1]' is a list; choices:"),
    (
        mc(choices="[best_answer, source]"),
        broken(row=6, source={"url": "x"}),
        6,
        "field 'source' is a mapping; choices:",
    ),
    (
        gen(template="Q: {correct_answers}\\nA:", answer="best_answer"),
        ROWS,
        1,
        "field 'correct_answers' is a list; a template field needs text",
    ),
    (
        gen(answer="correct_answers"),
        broken(row=7, correct_answers=["a", ["b"]]),
        7,
        "field 'correct_answers[1]' is a list; answer: names a field holding one answer (text) or a list of answers",
    ),
    (gen(answer="source"), broken(row=8, source={"url": "x"}), 8, "field 'source' is a mapping; answer:"),
]


@pytest.mark.parametrize("yaml_text, rows, line, message", WRONG)
def test_a_field_of_the_wrong_kind_names_the_data_file_its_line_and_the_field(tmp_path, yaml_text, rows, line, message):
    with pytest.raises(KickError) as err:
        items_of(tmp_path, yaml_text, rows)
    assert str(err.value).startswith(f"{tmp_path / 'truthfulqa.jsonl'}:{line}: {message}"), str(err.value)
    assert "\n" not in str(err.value) and "['" not in str(err.value)  # one line; no list written out


def test_fields_the_task_does_not_use_may_be_anything_and_numbers_are_text(tmp_path):
    rows = [dict(r, extra={"nested": [1, 2]}, none=None, flag=True, n=k, score=0.5) for k, r in enumerate(ROWS)]
    _, items = items_of(tmp_path, mc(template="#{n} ({score}) Q: {question}\\nA:"), rows)
    assert items[3].question == f"#3 (0.5) Q: {ROWS[3]['question']}\nA:"
    unused = {"extra", "none", "flag", "correct_answers", "incorrect_answers"}
    assert all(not unused & {k for k, _ in i.fields} for i in items)  # kept out of the template fields, no repr
    task, items = items_of(tmp_path, gen(answer="correct_answers"), rows)  # generation: a list of answers
    assert items[0].answers == tuple(ROWS[0]["correct_answers"])


def test_a_list_into_a_template_stops_the_run_with_one_line(pytester):
    (pytester.path / "truthfulqa.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in broken(row=3, question=["a", "b"])), encoding="utf-8"
    )
    (pytester.path / "t.yaml").write_text(MC1)
    result = pytester.runpytest(*TINY, "--kick-task-file", "t.yaml", "--kick-tasks", "truthfulqa_mc1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [ln for ln in result.stderr.str().splitlines() if "pytest-kick" in ln]
    assert len(lines) == 1 and "truthfulqa.jsonl:3: field 'question' is a list" in lines[0], result.stderr.str()


def test_a_record_that_is_not_an_object_names_its_line(tmp_path):
    (tmp_path / "truthfulqa.jsonl").write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(["q", "a"]) + "\n")
    (tmp_path / "t.yaml").write_text(MC1)
    with pytest.raises(KickError, match=r"truthfulqa\.jsonl:3: a record is a JSON object .*, not a list$"):
        declarative.load(tmp_path / "t.yaml")


SHUFFLED = MC1 + "shuffle: true\n"
LETTERED = MC1.replace('"Q: {question}\\nA:"', '"Q: {question}\\n{choices}\\nAnswer:"') + "labels: ABCDEFGH\n"


def test_shuffle_reorders_each_items_choices_and_moves_the_label_along(tmp_path):
    _, plain = items_of(tmp_path, MC1)
    task, shuffled = items_of(tmp_path, SHUFFLED, name="s.yaml")
    _, again = items_of(tmp_path, SHUFFLED, name="s2.yaml")
    assert [(i.choices, i.label) for i in shuffled] == [(i.choices, i.label) for i in again]
    for p, s, row in zip(plain, shuffled, ROWS):
        assert sorted(s.choices) == sorted(p.choices) and s.id == p.id
        assert s.choices[s.label] == row["best_answer"] == s.answers[0]
    assert len({i.label for i in shuffled}) > 3  # the correct choice no longer always first
    # seeded by task name and item id (random.Random of a string: sha512, not hash()): the same in every process
    assert [i.label for i in shuffled][:8] == PINNED_LABELS
    assert task.order("truthfulqa_mc1-0", 8) == PINNED_ORDER


PINNED_LABELS = [3, 1, 1, 3, 3, 2, 5, 1]
PINNED_ORDER = [6, 3, 2, 0, 4, 5, 1, 7]  # item 0: its label 0 goes to 3


def test_shuffle_is_the_same_under_another_hash_seed(tmp_path):
    code = (
        "import sys; from pytest_kick.api import MultipleChoice; "
        "print(MultipleChoice('truthfulqa_mc1', sys.argv[1], choices=['best_answer', 'incorrect_answers'], "
        "answer='best_answer', shuffle=True).order('truthfulqa_mc1-0', 8))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(SAMPLE)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        assert json.loads(out) == PINNED_ORDER


def test_lettered_shuffled_prompts_list_the_choices_in_their_new_order(tmp_path):
    task, items = items_of(tmp_path, LETTERED + "shuffle: true\n")
    item = items[0]
    assert item.labels == tuple("ABCDEFGH") and item.choices[item.label] == ROWS[0]["best_answer"]
    listed = [f"{x}. {c}" for x, c in zip(item.labels, item.choices)]
    assert item.question == "Q: " + ROWS[0]["question"] + "\n" + "\n".join(listed) + "\nAnswer:"
    assert task._shot_answer(item) == item.labels[item.label]


def test_shuffle_has_its_own_template_hash_and_leaves_unshuffled_hashes_alone(tmp_path):
    rows = [
        {"question": r["question"], "choices": [r["best_answer"], *r["incorrect_answers"]], "label": 0} for r in ROWS
    ]  # the layout the pinned hash was made for (choices: choices, answer: label)
    data = tmp_path / "truthfulqa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    plain = MultipleChoice("truthfulqa_mc1", data, template="Q: {question}\nA:", choices="choices", answer="label")
    shuffled = MultipleChoice(
        "truthfulqa_mc1", data, template="Q: {question}\nA:", choices="choices", answer="label", shuffle=True
    )
    assert plain.template_hash(Settings()) != shuffled.template_hash(Settings())
    assert plain.template_hash(Settings()) == UNSHUFFLED_HASH  # what the code gave before shuffle existed


UNSHUFFLED_HASH = "377aa6cf2dbb794e9c1e09c138549489ca739d8de381f18cc83dafb99be2a2ef"


def test_shuffle_must_be_true_or_false(tmp_path):
    with pytest.raises(KickError, match=r"t\.yaml:7: shuffle: 'yes please' is not true or false"):
        items_of(tmp_path, MC1 + "shuffle: yes please\n")


def test_the_summary_says_choices_per_item_chance_and_a_fixed_letter(tmp_path):
    task, items = items_of(tmp_path, MC1)
    chance = sum(1 / (1 + len(r["incorrect_answers"])) for r in ROWS) / len(ROWS)
    assert choices_summary(task, items) == f"2-8 choices per item, chance {chance:.3g}"
    assert choices_summary(task, items[:2]) == "6-8 choices per item, chance 0.146"
    assert choices_summary(task, items[2:4]) == "4 choices per item, chance 0.25"
    lettered, items = items_of(tmp_path, LETTERED, name="l.yaml")
    assert choices_summary(lettered, items).endswith(
        "chance 0.221; the correct choice is always A: position bias decides (shuffle: true)"
    )
    shuffled, items = items_of(tmp_path, LETTERED + "shuffle: true\n", name="s.yaml")
    assert choices_summary(shuffled, items) == "2-8 choices per item, chance 0.221"


def hand_converted(tmp_path):
    """The sample as the older README wanted it, converted by hand: a ``choices`` list and a ``label``."""
    rows = [
        {"question": r["question"], "choices": [r["best_answer"], *r["incorrect_answers"]], "label": 0} for r in ROWS
    ]
    (tmp_path / "hand.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "hand.yaml").write_text(
        textwrap.dedent("""\
        name: truthfulqa_mc1
        type: multiple_choice
        data: hand.jsonl
        template: "Q: {question}\\nA:"
        choices: choices
        answer: label
    """)
    )
    [task] = declarative.load(tmp_path / "hand.yaml")
    return task


def test_the_readme_task_on_real_records_scores_as_the_hand_converted_copy(tmp_path, tiny, one_thread):
    from pytest_kick.engines.base import Runner
    from pytest_kick.engines.local import LocalEngine

    yaml_text, _ = _readme_examples()
    (tmp_path / "truthfulqa.jsonl").write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "truthfulqa.yaml").write_text(yaml_text)
    [readme] = declarative.load(tmp_path / "truthfulqa.yaml")
    runner = Runner(LocalEngine(*tiny, "cpu", 16))
    results = []
    for task in (readme, hand_converted(tmp_path)):
        shots, items = task.split(task.load(Settings()), Settings())
        asked = []
        scores, outputs = task.evaluate(items, shots, Settings(), lambda reqs: asked.extend(reqs) or runner(reqs))
        results.append((scores, outputs, [(r.context, r.continuation) for r in asked]))
    assert len(results[0][2]) == sum(1 + len(r["incorrect_answers"]) for r in ROWS)
    assert results[0] == results[1]
