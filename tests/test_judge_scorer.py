"""The judge prompts as LLM-KICK and MT-Bench wrote them, the scorer over a local ``chat`` callable, the
reply cache, and what judge errors do to a case."""

import math

import pytest

from pytest_kick.errors import KickError
from pytest_kick.judge import JudgeSpec, build_scorer, callable_backend, parse_spec
from pytest_kick.judge.cache import ReplyCache, cache_key, public_endpoint
from pytest_kick.judge.errors import JudgeErrorsExceeded, check_share, count, paired
from pytest_kick.judge.protocols import REMINDERS, KickInstruction, KickSummary, MTBenchSingle, bundled_dir, family_for
from pytest_kick.tasks.instruction import load_mtbench, load_vicuna
from pytest_kick.tasks.summarization import BUNDLED, load_stories

KICK_GENERAL_END = (
    "Please first output a single line containing only two values indicating the scores for "
    "Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent "
    "line, please provide a comprehensive explanation of your evaluation, avoiding any potential "
    "bias and ensuring that the order in which the responses were presented does not affect your "
    "judgment.\n\n"
)


@pytest.fixture(scope="module")
def vicuna():
    return {item.category: item for item in load_vicuna(bundled_dir())[0]}


@pytest.fixture(scope="module")
def mtbench():
    return load_mtbench(bundled_dir())[0]


@pytest.fixture(scope="module")
def story():
    return load_stories(bundled_dir() / BUNDLED)[0]


# --- kick: LLM-KICK's pairwise prompts, verbatim --------------------------------------------------------
def test_kick_instruction_prompt_is_llmkicks_in_both_orders(vicuna):
    item = vicuna["generic"]
    first, second = KickInstruction().asks(item, ["MY ANSWER"])
    assert first.system == "You are a helpful and precise assistant for checking the quality of the answer."
    assert first.user.startswith(
        f"[Question]\n{item.turns[0]}\n\n[The Start of Assistant 1's Answer]\n"
        f"{item.references[0]}\n\n[The End of Assistant 1's Answer]\n\n"
        "[The Start of Assistant 2's Answer]\nMY ANSWER\n\n[The End of Assistant 2's Answer]"
    )
    assert first.user.endswith(KICK_GENERAL_END)
    assert (first.model_slot, second.model_slot) == (2, 1)  # LLM-KICK's order first, then swapped
    assert "[The Start of Assistant 1's Answer]\nMY ANSWER\n" in second.user
    assert (first.decoding.temperature, first.decoding.max_tokens) == (0.2, 1024)


@pytest.mark.parametrize(
    "category, template, reader",
    [
        ("coding", "llmkick-coding", "pair_first_line"),
        ("math", "llmkick-math", "pair_tuple"),
        ("generic", "llmkick-general", "pair_first_line"),
        ("fermi", "llmkick-general", "pair_first_line"),
        ("writing", "llmkick-general", "pair_first_line"),
    ],
)
def test_kick_instruction_prompt_chosen_by_category(vicuna, category, template, reader):
    ask = KickInstruction().asks(vicuna[category], ["x"])[0]
    assert (ask.template, ask.reader) == (template, reader)
    if category == "math":
        assert "please output a Python tuple containing two numerical scores" in ask.user


def test_kick_summary_prompt_uses_llmkicks_question_and_the_highlights(story):
    first, second = KickSummary().asks(story, ["MY SUMMARY"])
    assert first.system == (
        "You are a helpful and precise assistant for checking the quality of the summarization "
        "of two stories within 150 words."
    )
    assert first.user.startswith(
        f"[Story]\n{story.prompt}\n\n[The Start of Assistant 1's Summary]\n"
        f"{story.references[0]}\n\n[The End of Assistant 1's Summary]"
    )
    assert "@highlight" in first.user  # LLM-KICK's question text, verbatim
    assert "four lines containing only two values" in first.user
    assert (first.reader, first.decoding.temperature, first.decoding.max_tokens) == ("pair_lines", 0.1, 1024)
    assert "[The Start of Assistant 1's Summary]\nMY SUMMARY\n" in second.user


# --- strict: MT-Bench single-answer grading ---------------------------------------------------------------
def test_strict_two_turn_math_is_graded_against_gpt4_references(mtbench):
    item = next(i for i in mtbench if i.category == "math" and i.references)
    turn1, turn2 = MTBenchSingle().asks(item, ["A1", "A2"])
    assert (turn1.template, turn2.template) == ("single-math-v1", "single-math-v1-multi-turn")
    assert f"[The Start of Reference Answer]\n{item.references[0]}\n[The End of Reference Answer]" in turn1.user
    assert turn1.user.endswith("[The Start of Assistant's Answer]\nA1\n[The End of Assistant's Answer]")
    assert (
        f"### User:\n{item.turns[0]}\n\n### Assistant A:\nA1\n\n### User:\n{item.turns[1]}\n\n### Assistant A:\nA2"
    ) in turn2.user
    assert f"### Reference answer:\n{item.references[1]}" in turn2.user
    assert turn1.system == "You are a helpful assistant."
    assert (turn1.decoding.temperature, turn1.decoding.max_tokens) == (0.0, 2048)


def test_strict_without_reference_uses_single_v1(mtbench, story):
    writing = next(i for i in mtbench if i.category == "writing")
    assert [a.template for a in MTBenchSingle().asks(writing, ["a", "b"])] == ["single-v1", "single-v1-multi-turn"]
    (ask,) = MTBenchSingle().asks(story, ["a summary"])
    assert ask.template == "single-v1" and "@highlight" not in ask.user
    assert ask.user.startswith("[Instruction]\nPlease act as an impartial judge")
    assert "[Question]\nSummarize the given story" in ask.user


def test_protocol_per_task():
    assert isinstance(family_for("summarization", "small", "kick"), KickSummary)
    assert isinstance(family_for("instruction", "vicuna", "kick"), KickInstruction)
    assert isinstance(family_for("instruction", "mtbench", "kick"), MTBenchSingle)  # no LLM-KICK counterpart
    assert isinstance(family_for("instruction", "vicuna", "strict"), MTBenchSingle)
    with pytest.raises(KickError, match="not scored by a judge"):
        family_for("mmlu", "mmlu", "strict")


# --- the scorer over a local chat callable ------------------------------------------------------------
class FakeJudge:
    """A judge model behind ``chat(conversations) -> list[str]``: replies from a script, calls counted."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.conversations = []

    def __call__(self, conversations):
        self.conversations += conversations
        return [self.replies.pop(0) if len(self.replies) > 1 else self.replies[0] for _ in conversations]


def scorer_for(chat, tmp_path, task=("instruction", "vicuna"), protocol="kick", model="judge-a"):
    return build_scorer(*task, protocol, callable_backend(chat, model), tmp_path / "cache")


def test_unreadable_reply_asked_again_and_only_what_was_read_cached(vicuna, tmp_path):
    chat = FakeJudge("I cannot decide.", "no scores", "9 7\nfine")
    item = vicuna["generic"]
    scorer = scorer_for(chat, tmp_path)
    # both orders unreadable at first; asked again, both read "9 7": the answer 7 as Assistant 2, 9 as 1
    assert scorer.score(item, ["answer"]) == 8.0
    assert scorer.judge.stats.reasks == 2
    assert (scorer.judge.stats.asks, scorer.judge.stats.unreadable_first, scorer.judge.stats.failed_asks) == (2, 2, 0)
    calls = len(chat.conversations)
    assert calls == 4
    # asked again with the unreadable reply, what was wrong with it and a reminder of the format
    assert chat.conversations[2][:2] == chat.conversations[0]
    assert chat.conversations[2][2] == ("assistant", "I cannot decide.")
    assert chat.conversations[2][3][1].endswith(REMINDERS["pair_first_line"])
    assert "'I cannot decide.' holds no score" in chat.conversations[2][3][1]

    # the unreadable first replies were not cached: a rerun asks them again; the re-asks read are replayed
    rerun = FakeJudge("I cannot decide.", "no scores")
    again = scorer_for(rerun, tmp_path)
    assert again.score(item, ["answer"]) == scorer.score(item, ["answer"])
    assert len(rerun.conversations) == again.judge.stats.requests == 2 and again.judge.stats.cache_hits == 2


def test_still_unreadable_is_a_judge_error_not_a_zero(vicuna, tmp_path):
    scorer = scorer_for(FakeJudge("no idea"), tmp_path)
    item = vicuna["generic"]
    assert math.isnan(scorer.score(item, ["answer"]))
    assert scorer.figures(item, ["answer"])["judge_error"] == 1.0
    assert "could not be read (3 asks): 'no idea'" in scorer.explanation(item, ["answer"])
    assert scorer.summary()["item_errors"] == 1 and scorer.summary()["unreadable"] == 2  # both orders


def test_identical_asks_are_sent_once(vicuna, tmp_path):
    chat = FakeJudge("8 8\nequal")
    scorer = scorer_for(chat, tmp_path)
    item = vicuna["generic"]
    twin = type(item)(**{**item.__dict__, "id": "twin"})
    scorer.prepare([item, twin], [["same"], ["same"]])
    assert len(chat.conversations) == 2  # two orders, shared by the two items


def test_another_judge_model_or_protocol_is_another_judgment(vicuna, tmp_path):
    item = vicuna["generic"]
    first = scorer_for(FakeJudge("9 7\n"), tmp_path, model="judge-a")
    first.score(item, ["answer"])
    other_model = FakeJudge("9 3\n")
    assert scorer_for(other_model, tmp_path, model="judge-b").score(item, ["answer"]) == 6.0  # not judge-a's 8
    assert len(other_model.conversations) == 2
    assert first.fingerprint() != scorer_for(FakeJudge(""), tmp_path, model="judge-b").fingerprint()
    assert first.fingerprint() != scorer_for(FakeJudge(""), tmp_path, protocol="strict").fingerprint()
    assert first.name == "judge-judge-a" and first.floor == 1.0 and first.needs_reference
    assert not scorer_for(FakeJudge(""), tmp_path, protocol="strict").needs_reference


def test_cache_key_covers_what_changes_the_reply_and_no_credentials():
    base = dict(endpoint="http://h/v1", model="m", messages=(("user", "q"),), temperature=0.0, max_tokens=10, ask=0)
    key = cache_key(**base)
    for field, value in [
        ("endpoint", "http://other/v1"),
        ("model", "m2"),
        ("messages", (("user", "q2"),)),
        ("temperature", 0.2),
        ("max_tokens", 11),
        ("ask", 1),
    ]:
        assert cache_key(**{**base, field: value}) != key, field
    assert (
        public_endpoint("https://user:sk-secret@api.example.com:8443/v1/?key=sk-secret")
        == "https://api.example.com:8443/v1"
    )


def test_damaged_cache_entry_is_asked_again(vicuna, tmp_path):
    item = vicuna["generic"]
    scorer_for(FakeJudge("9 7\n"), tmp_path).score(item, ["answer"])
    for path in (tmp_path / "cache" / "judge").rglob("*.json"):
        path.write_text("{not json")
    chat = FakeJudge("9 5\n")
    assert scorer_for(chat, tmp_path).score(item, ["answer"]) == 7.0  # (5 + 9) / 2: asked anew
    assert len(chat.conversations) == 2
    assert ReplyCache(tmp_path / "cache").get("0" * 64) is None


# --- judge errors and the case -------------------------------------------------------------------------
def test_paired_keeps_items_judged_in_both_runs():
    nan = float("nan")
    dense, compressed = [7.0, nan, 5.0, 6.0], [6.0, 4.0, nan, 6.0]
    assert paired(dense, compressed) == ([0, 3], 2)
    assert count(dense) == 1


def test_a_case_is_an_error_beyond_the_stated_share():
    check_share("summarization:small[wanda-0.5]", 1, 20)  # 5%: a verdict on the other 19
    with pytest.raises(JudgeErrorsExceeded, match=r"judge failed on 2 of 20 items \(10%, more than 5%\)"):
        check_share("summarization:small[wanda-0.5]", 2, 20, reasons=["judge request failed: HTTP 500 (5 attempts)"])


@pytest.mark.parametrize(
    "value, spec",
    [
        ("rouge", JudgeSpec("rouge")),
        ("openai:gpt-4", JudgeSpec("openai", "gpt-4")),
        ("local:qwen2.5-coder-0.5b", JudgeSpec("local", "qwen2.5-coder-0.5b")),
        ("openai:meta-llama/Llama-3-70B:fp8", JudgeSpec("openai", "meta-llama/Llama-3-70B:fp8")),
    ],
)
def test_parse_spec(value, spec):
    assert parse_spec(value) == spec


@pytest.mark.parametrize("value", ["", "gpt-4", "openai:", "anthropic:claude", "local"])
def test_parse_spec_refuses_with_the_accepted_forms(value):
    with pytest.raises(KickError, match="expected rouge, openai:<model>"):
        parse_spec(value)


def test_an_unreadable_reply_is_quoted_by_its_start_on_one_line():
    from pytest_kick.judge.runner import glimpse

    assert glimpse(" 4/10\n4/10\n") == "'4/10\\n4/10'"  # one line, the line break still visible
    long = glimpse("Assistant 1: 9\n" + "word " * 40)
    assert long.startswith("'Assistant 1: 9\\nword") and long.endswith("...'") and len(long) == 60 + 1 + 5
