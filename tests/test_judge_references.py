"""Strict grading of Vicuna-bench against FastChat's GPT-4 reference answers (bundled with their provenance in
fixtures/mt_bench/SOURCES.md), where FastChat has them: its 7 coding and 3 math questions."""

import json

import pytest
from test_judge_scorer import FakeJudge, scorer_for

from pytest_kick.judge.protocols import bundled_dir
from pytest_kick.tasks.instruction import VICUNA_GPT4_REFERENCES, Instruction, load_vicuna


@pytest.fixture(scope="module")
def vicuna():
    return {item.id: item for item in load_vicuna(bundled_dir())[0]}


def test_fastchats_gpt4_answers_are_the_strict_references_of_coding_and_math(vicuna):
    records = [json.loads(line) for line in (bundled_dir() / VICUNA_GPT4_REFERENCES).read_text().splitlines()]
    assert [r["model_id"] for r in records] == ["gpt-4"] * 10
    with_reference = {k: v for k, v in vicuna.items() if v.strict_references}
    assert sorted(with_reference) == [f"vicuna_bench/{n}" for n in range(61, 71)]
    assert {v.category for v in with_reference.values()} == {"coding", "math"}
    assert vicuna["vicuna_bench/69"].strict_references == (records[8]["choices"][0]["turns"][0],)
    assert vicuna["vicuna_bench/69"].references != vicuna["vicuna_bench/69"].strict_references  # GPT-3.5's


def test_a_strict_judge_grades_math_against_gpt4_and_the_rest_without_a_reference(vicuna, tmp_path):
    chat = FakeJudge("Rating: [[6]]")
    task = Instruction("vicuna", scorer=scorer_for(chat, tmp_path, protocol="strict"))
    math_item, generic = vicuna["vicuna_bench/69"], vicuna["vicuna_bench/1"]
    assert task.score_outputs([math_item, generic], ["x = 10", "some tips"]) == [6.0, 6.0]
    prompts = [conversation[1][1] for conversation in chat.conversations]
    assert len(prompts) == 2
    math_prompt = next(text for text in prompts if "3x + 10" in text)
    assert "[The Start of Reference Answer]\n" + math_item.strict_references[0] in math_prompt
    assert math_item.references[0] not in math_prompt  # not GPT-3.5's answer
    other = next(text for text in prompts if "3x + 10" not in text)
    assert "Reference Answer" not in other  # single-v1, as FastChat grades a generic question


def test_the_kick_judge_still_compares_with_gpt35(vicuna, tmp_path):
    chat = FakeJudge("9 6\nfine")
    task = Instruction("vicuna", scorer=scorer_for(chat, tmp_path, protocol="kick"))
    item = vicuna["vicuna_bench/69"]
    task.score_outputs([item], ["x = 10"])
    assert all(item.references[0] in c[1][1] for c in chat.conversations)
    assert not any(item.strict_references[0] in c[1][1] for c in chat.conversations)
