"""Chance level per item: a task's optional ``chance(item)``, its default (the task's floor), and the gate
using the levels of the items it judges."""

from dataclasses import dataclass

from pytest_kick import gate
from pytest_kick.tasks.base import Settings, chance_levels
from pytest_kick.tasks.mmlu import MMLU


@dataclass(frozen=True)
class Question:
    id: str
    choices: tuple


class MixedChoice:
    """A multiple-choice task whose items have 3, 4 or 5 choices."""

    name = family = "mixed"
    floor = 0.25
    higher_is_better = True

    def chance(self, item: Question) -> float:
        return 1 / len(item.choices)


class OpenQA:
    name = family = "open"
    floor = 0.0
    higher_is_better = True


class Perplexity:
    name = family = "ppl"
    floor = None
    higher_is_better = False

    def chance(self, item):  # never asked: a task without a floor has no chance level
        raise AssertionError("chance() of a task without a floor")


def test_bundled_mmlu_items_have_the_chance_of_their_four_choices():
    task = MMLU()
    _, items = task.split(task.load(Settings()), Settings(limit=12))
    assert chance_levels(task, items) == [0.25] * len(items)


def test_a_task_without_chance_gets_its_floor_for_every_item():
    assert chance_levels(OpenQA(), [Question("a", ())]) == 0.0
    assert chance_levels(Perplexity(), [Question("a", ())]) is None


def test_mixed_choice_items_are_judged_against_their_own_levels():
    items = [Question(f"q{i}", ("a", "b", "c", "d", "e")[: 3 + i % 3]) for i in range(90)]  # 3, 4, 5, 3, ...
    levels = chance_levels(MixedChoice(), items)
    assert sorted(set(levels)) == [1 / 5, 1 / 4, 1 / 3]
    dense = [1.0] * 30 + [0.0] * 60  # 0.333: significant against 0.25, not against these items' levels
    assert gate.informative(dense, MixedChoice.floor)
    assert not gate.informative(dense, levels)
    dense = [1.0] * 36 + [0.0] * 54  # 0.4
    assert gate.informative(dense, levels)


def test_choices_summary_states_the_spread_and_the_chance_level():
    from pytest_kick.tasks.base import choices_summary

    items = [Question("a", ("x", "y", "z")), Question("b", ("x", "y", "z", "w", "v"))]
    assert choices_summary(MixedChoice(), items) == "3-5 choices per item, chance 0.267"
    assert choices_summary(MixedChoice(), items[:1]) == "3 choices per item, chance 0.333"
    assert choices_summary(OpenQA(), items) is None  # no chance(item): not a multiple-choice task


def test_an_inconclusive_case_shows_its_chance_level_in_the_table_and_markdown(pytester):
    import json

    rows = [
        {"question": f"What is {i} plus one?", "choices": [str(i + 1), str(i + 7), "none"], "label": 0}
        for i in range(10)
    ]
    (pytester.path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (pytester.path / "t.yaml").write_text(
        'name: sums\ntype: multiple_choice\ndata: qa.jsonl\nanswer: label\ntemplate: "Q: {question}\\nA:"\n'
    )
    result = pytester.runpytest(
        "--kick-model",
        "tiny-random-llama",
        "--kick-task-file",
        "t.yaml",
        "--kick-tasks",
        "sums",
        "--kick-ratio",
        "0.5",
        "--kick-markdown",
        "s.md",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(skipped=2)
    out = result.stdout.str()
    import re

    assert re.search(r"│ 0\.\d00 \(n=10, chance 0\.333\) │ inconclusive │", out), out
    assert out.count("sums: 3 choices per item, chance 0.333") == 1
    markdown = (pytester.path / "s.md").read_text()
    assert (
        len(re.findall(r"\| 0\.\d00 \(n=10, chance 0\.333\) \|", markdown)) == 2
        and "sums: 3 choices per item" in markdown
    )
