"""Re-asks that say what was wrong, and the misreads a small judge's free text invited, through a scripted
local judge (``chat(conversations) -> list[str]``)."""

import pytest
from test_judge_scorer import FakeJudge, scorer_for

from pytest_kick.judge.protocols import REMINDERS, bundled_dir
from pytest_kick.tasks.instruction import load_vicuna
from pytest_kick.tasks.summarization import BUNDLED, load_stories


@pytest.fixture(scope="module")
def vicuna():
    return {item.category: item for item in load_vicuna(bundled_dir())[0]}


def test_each_reask_quotes_what_was_wrong_and_none_repeats_another(tmp_path):
    """A judge that writes the four summary scores on one line every time (what Qwen2.5-Coder-1.5B did)."""
    story = load_stories(bundled_dir() / BUNDLED)[0]
    chat = FakeJudge("8 7 8 8\nBoth summaries are fine.")
    scorer = scorer_for(chat, tmp_path, task=("summarization", "small"))
    assert scorer.judgment(story, ["a summary"]).error.startswith("judge reply could not be read (3 asks)")
    first_order = [c for c in chat.conversations if c[:2] == chat.conversations[0][:2]]
    assert [len(c) for c in first_order] == [2, 4, 6]  # the question, then each reply and what was wrong with it
    assert len(set(first_order)) == 3  # no re-ask is byte-identical to another
    for earlier, later in zip(first_order, first_order[1:]):
        assert later[: len(earlier)] == earlier
        said = later[-1][1]
        assert said.startswith("Line 1 of your reply, '8 7 8 8' holds 4 numbers, not two scores.")
        assert said.endswith(REMINDERS["pair_lines"])


def test_reversed_labels_are_read_by_name_in_both_orders(vicuna, tmp_path):
    chat = FakeJudge("Assistant 2 receives 9, Assistant 1 receives 3\nThe second answer is better.")
    scorer = scorer_for(chat, tmp_path)
    # the model is Assistant 2 in the first order (9) and Assistant 1 in the second (3): never (9, 3) twice
    assert scorer.score(vicuna["generic"], ["answer"]) == 6.0
    assert scorer.figures(vicuna["generic"], ["answer"])["judge_reference"] == 6.0
    assert len(chat.conversations) == 2  # read at the first ask


def test_a_tuple_of_the_solution_is_refused_and_asked_again(vicuna, tmp_path):
    chat = FakeJudge("The lines meet at (2, 3).\nAssistant 1 is right.", "So the scores are (9, 4).")
    scorer = scorer_for(chat, tmp_path)
    assert scorer.score(vicuna["math"], ["answer"]) == pytest.approx((4 + 9) / 2)  # Assistant 2, then Assistant 1
    assert scorer.judge.stats.reasks == 1 and "not with the tuple of the two scores" in chat.conversations[2][3][1]


def test_a_range_is_no_rating_and_is_asked_again(vicuna, tmp_path):
    chat = FakeJudge("Given the rating 1 to 10, I'd say 7", "Rating: [[7]]")
    scorer = scorer_for(chat, tmp_path, protocol="strict")
    assert scorer.score(vicuna["generic"], ["answer"]) == 7.0  # never 1
    assert scorer.judge.stats.reasks == 1
