"""Instruction following: Vicuna-bench and two-turn MT-Bench conversations, reference-based scoring."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.engines.base import Runner
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.instruction import (
    Conversation,
    Instruction,
    load_mtbench,
    load_vicuna,
    parse,
    render,
    vicuna_prompt,
)

VICUNA, MTBENCH = Instruction("vicuna"), Instruction("mtbench")
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)


def items(task, settings=None):
    settings = settings or Settings()
    return task.split(task.load(settings), settings)[1]


def test_names_metrics_floors():
    assert (VICUNA.name, MTBENCH.name, VICUNA.family) == ("instruction:vicuna", "instruction:mtbench", "instruction")
    assert (VICUNA.metric, MTBENCH.metric) == ("rougeL_vs_gpt35", "rougeL_vs_gpt4")
    assert VICUNA.floor == 0.0 and VICUNA.higher_is_better
    with pytest.raises(ValueError):
        Instruction("alpaca")


def test_vicuna_bench_is_llm_kicks_80_questions_with_gpt35_references():
    found = items(VICUNA)
    assert len(found) == 80 and all(len(i.turns) == 1 and len(i.references) == 1 for i in found)
    first = found[0]
    assert first.id == "vicuna_bench/1" and first.turns == ("How can I improve my time management skills?",)
    assert first.references[0].startswith("Here are some tips to improve your time management skills:")
    assert first.category == "generic"


def test_mtbench_keeps_the_30_questions_with_gpt4_references():
    dataset = MTBENCH.load(Settings())
    assert len(dataset.examples) == 80 and all(len(i.turns) == 2 for i in dataset.examples)
    found = items(MTBENCH)
    assert len(found) == 30 and {i.category for i in found} == {"math", "reasoning", "coding"}
    q101 = {i.id: i for i in found}["mt_bench/101"]
    assert q101.references[0].startswith("If you have just overtaken the second person, your current position is")
    assert q101.question.startswith("[turn 1] Imagine you are participating in a race")


def test_plain_prompt_is_fastchats_vicuna_v1_1():
    assert vicuna_prompt([("user", "Hi")]) == SYSTEM + " USER: Hi ASSISTANT:"
    assert vicuna_prompt([("user", "q1"), ("assistant", "a1"), ("user", "q2")]) == (
        SYSTEM + " USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:"
    )


def test_first_turn_requests_use_the_chat_template():
    item = items(VICUNA)[0]
    [request] = VICUNA.requests([item], [], Settings())
    assert request.messages == (("user", "How can I improve my time management skills?"),)
    assert request.prompt == SYSTEM + " USER: How can I improve my time management skills? ASSISTANT:"
    assert request.max_new_tokens == 256 and request.stop == ()


class FakeEngine:
    """Answers every request with a reply naming the round and the request's last user message."""

    name = "fake"

    def __init__(self):
        self.rounds: list[list[GenerationRequest]] = []

    def generate(self, requests, progress=None):
        self.rounds.append(list(requests))
        outputs = [f"  reply {len(self.rounds)} to {r.messages[-1][1][:12]}\n" for r in requests]
        if progress:
            for done in range(1, len(requests) + 1):
                progress(done, len(requests))
        return outputs


def test_mtbench_turn_two_sees_the_models_own_first_reply():
    conversation = Conversation(
        "c1", "q", ("ref one", "ref two"), ("Write a poem.", "Now shorter."), ("r1", "r2"), "writing"
    )
    single = Conversation("c2", "q", ("ref",), ("Hello there.",), ("ref",), "generic")
    engine, ticks = FakeEngine(), []
    scores, outputs = MTBENCH.evaluate(
        [conversation, single], [], Settings(), Runner(engine, lambda d, t: ticks.append((d, t)))
    )
    first, second = engine.rounds
    assert [r.messages for r in first] == [(("user", "Write a poem."),), (("user", "Hello there."),)]
    [follow_up] = second  # only the two-turn item has a second round
    assert follow_up.messages == (
        ("user", "Write a poem."),
        ("assistant", "reply 1 to Write a poem"),
        ("user", "Now shorter."),
    )
    assert follow_up.prompt == (
        SYSTEM + " USER: Write a poem. ASSISTANT: reply 1 to Write a poem</s>USER: Now shorter. ASSISTANT:"
    )
    assert outputs == [
        "[turn 1]\nreply 1 to Write a poem\n\n[turn 2]\nreply 2 to Now shorter.",
        "reply 1 to Hello there.",
    ]
    assert ticks[-1] == (3, 3) and [d for d, _ in ticks] == sorted(d for d, _ in ticks)
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_conversation_scores_average_the_turns():
    item = Conversation(
        "c", "q", ("alpha beta gamma", "delta epsilon"), ("t1", "t2"), ("alpha beta gamma", "delta epsilon"), "math"
    )
    both = render(["alpha beta gamma", "delta epsilon"])
    assert MTBENCH.score(item, None, both, Settings()) == pytest.approx(1.0)
    assert MTBENCH.score(item, None, render(["alpha beta gamma", "zeta"]), Settings()) == pytest.approx(0.5)
    assert MTBENCH.score(item, None, "alpha beta gamma", Settings()) == pytest.approx(0.5)  # no turn 2: it scores 0
    details = MTBENCH.details([item], [1.0], [both])
    assert details["rougeL"] == pytest.approx(1.0) and details["rougeL_turn2"] == pytest.approx(1.0)


def test_vicuna_reply_identical_to_reference_scores_one():
    item = items(VICUNA)[0]
    assert VICUNA.score(item, None, "\n" + item.references[0], Settings()) == pytest.approx(1.0)
    assert VICUNA.score(item, None, "", Settings()) == 0.0
    assert set(VICUNA.details([item], [1.0], [item.references[0]])) == {"rouge1", "rouge2", "rougeL"}


@given(st.lists(st.text(max_size=40), min_size=2, max_size=3))
def test_render_and_parse_round_trip(replies):
    import re

    expected = tuple(re.sub(r"\[turn (\d+)\]", r"[turn-\1]", r).strip() for r in replies)
    assert parse(render(replies), len(replies)) == expected


@given(st.text(max_size=40))
def test_single_turn_output_is_the_reply(reply):
    assert render([reply]) == reply and parse(reply, 1) == (reply.strip(),)


class AnyJudge:
    name = "judge-any"
    floor = 1.0
    needs_reference = False

    def score(self, item, replies):
        return 10.0

    def figures(self, item, replies):
        return {}

    def fingerprint(self):
        return "any"


def test_a_judge_without_references_gets_all_80_mtbench_questions():
    task = Instruction("mtbench", scorer=AnyJudge())
    assert task.metric == "judge-any" and task.floor == 1.0
    assert len(items(task)) == 80
    assert task.template_hash(Settings()) != MTBENCH.template_hash(Settings())


def test_template_hash_ignores_protocol_but_not_budget():
    assert VICUNA.template_hash(Settings()) == VICUNA.template_hash(Settings(protocol="kick"))
    assert VICUNA.template_hash(Settings()) != Instruction("vicuna", max_new_tokens=64).template_hash(Settings())


def test_zero_shot_subset():
    shots, found = VICUNA.split(VICUNA.load(Settings()), Settings(shots=2, limit=4))
    assert shots == [] and len(found) == 4


def _root(tmp_path, name, lines):
    (tmp_path / "mt_bench").mkdir(exist_ok=True)
    (tmp_path / "mt_bench" / name).write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question_id": 1, "category": "math", "turns": "one"}', "turns must be a non-empty list"),
        ('{"question_id": 1, "category": "math", "turns": ["a", "b"], "reference_gpt4": ["x"]}', "one string per turn"),
        ('{"question_id": 1, "category": "math"}', "record lacks turns"),
        ('{"question_id": 1,', "not valid JSON"),
    ],
)
def test_malformed_mtbench_file_names_it(tmp_path, line, message):
    root = _root(tmp_path, "mt_bench_questions.jsonl", [line])
    with pytest.raises(KickError, match=message) as err:
        load_mtbench(root)
    assert "mt_bench_questions.jsonl" in str(err.value)


def test_missing_vicuna_references_file_names_it(tmp_path):
    root = _root(
        tmp_path,
        "llmkick_conversation_questions.jsonl",
        [json.dumps({"question_id": 1, "text": "Hi?", "category": "generic"})],
    )
    with pytest.raises(KickError, match="llmkick_gpt-3.5-turbo_reference_answers.jsonl is missing"):
        load_vicuna(root)


def test_questions_without_references_are_left_out_of_rouge_scoring(tmp_path):
    root = _root(
        tmp_path,
        "llmkick_conversation_questions.jsonl",
        [json.dumps({"question_id": k, "text": f"q{k}?", "category": "generic"}) for k in (1, 2)],
    )
    _root(tmp_path, "llmkick_gpt-3.5-turbo_reference_answers.jsonl", [json.dumps({"question_id": 2, "text": "a"})])
    gpt4 = {"question_id": 1, "model_id": "gpt-4", "choices": [{"index": 0, "turns": ["b"]}]}
    _root(tmp_path, "fastchat_vicuna_gpt-4_reference_answers.jsonl", [json.dumps(gpt4)])
    found, _ = load_vicuna(root)
    assert [i.references for i in found] == [(), ("a",)]
    assert [i.strict_references for i in found] == [("b",), ()]  # what a strict judge grades against


@pytest.mark.slow
def test_smollm2_holds_a_two_turn_conversation(smollm2):
    from pytest_kick.engines.local import LocalEngine

    run = Runner(LocalEngine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=8))
    settings = Settings(limit=2)
    for variant in ("vicuna", "mtbench"):
        task = Instruction(variant, max_new_tokens=32)  # a short budget: the mechanics, not the quality
        found = items(task, settings)
        scores, outputs = task.evaluate(found, [], settings, run)
        replies = [parse(o, len(i.turns)) for i, o in zip(found, outputs)]
        assert all(all(r) for r in replies), outputs
        assert all(0.0 < s < 1.0 for s in scores), (scores, outputs)
        if variant == "mtbench":
            assert all(o.startswith("[turn 1]\n") and "\n\n[turn 2]\n" in o for o in outputs)
