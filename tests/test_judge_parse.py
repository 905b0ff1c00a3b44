"""Reading judge replies: hand-written cases from each prompt family, GPT-4's real replies, and
hypothesis inputs that must never crash a parser."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.judge import parse
from pytest_kick.judge.protocols import SUMMARY_METRICS, Ask, Decoding
from pytest_kick.judge.runner import read

DATA = Path(__file__).parent / "data"
PARSERS = (parse.pair_first_line, parse.pair_tuple, parse.pair_lines, parse.rating)


def records(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


# --- LLM-KICK general / coding: two scores on the first line -------------------------------------
@pytest.mark.parametrize(
    "reply, expected",
    [
        ("9 8\nAssistant 1 was more detailed.", (9.0, 8.0)),
        ("9 8.5\n\nBoth answers are helpful.", (9.0, 8.5)),
        ("8,7\nexplanation", (8.0, 7.0)),
        ("  \n\n7 10\nthe first line may follow blank lines", (7.0, 10.0)),
        ("8.5/10 for Assistant 1, 6/10 for Assistant 2.\n\nAssistant 1: the code is correct", (8.5, 6.0)),
        ("Assistant 1: 8, Assistant 2: 7\nexplanation", (8.0, 7.0)),
        ("**8 9**\nmarkdown emphasis around the scores", (8.0, 9.0)),
        ("Scores: 6 and 7.\nsentence punctuation after the second score", (6.0, 7.0)),
    ],
)
def test_pair_first_line_reads_two_scores(reply, expected):
    assert parse.pair_first_line(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "error",  # LLM-KICK's placeholder for a failed request
        "Assistant 1 gave the better answer.\n9 8",  # the scores are not on the first line
        "9\n8",  # one score on the first line
        "9 8 7\nthree numbers",
        "11 8\nout of the 1-10 scale",
        "-1 5\nbelow the scale",
        "2023 was the year; 8 7",  # a year is a number that is no score: three numbers
    ],
)
def test_pair_first_line_refuses_what_is_not_two_scores(reply):
    assert parse.pair_first_line(reply) is None


# --- LLM-KICK math: a Python tuple after the worked solution ---------------------------------------
@pytest.mark.parametrize(
    "reply, expected",
    [
        ("First, let's solve it: 2 + 2 = 4.\n\nSo, the final scores are (10, 4).", (10.0, 4.0)),
        ("Scores (6, 6) at first glance... after checking: (7, 3)", (7.0, 3.0)),  # the last tuple
        ("(8.5, 9)\nexplanation", (8.5, 9.0)),
        (
            "We get (2, 3) as the point.\nTherefore the scores are:\n\nAssistant 1: 10/10\nAssistant 2: 1/10\n",
            (10.0, 1.0),
        ),
        ("9 6\nno tuple: the first line holds the scores", (9.0, 6.0)),
    ],
)
def test_pair_tuple(reply, expected):
    assert parse.pair_tuple(reply) == expected


def test_pair_tuple_skips_tuples_off_the_scale():
    assert parse.pair_tuple("The point (12, 40) solves it. Scores: (9, 2)") == (9.0, 2.0)
    assert parse.pair_tuple("Only the point (12, 40) is given.") is None


# --- LLM-KICK summaries: four lines of two scores ----------------------------------------------------
def test_pair_lines_reads_four_metric_lines():
    reply = "8 7\n8 7\n9 8\n8 7\nAssistant 1's summary is coherent..."
    assert parse.pair_lines(reply) == [(8.0, 7.0), (8.0, 7.0), (9.0, 8.0), (8.0, 7.0)]
    labelled = "Coherence: 8 9\nConsistency: 7 9\nFluency: 9 9\nRelevance: 8 8\n\nBoth are good."
    assert parse.pair_lines(labelled) == [(8.0, 9.0), (7.0, 9.0), (9.0, 9.0), (8.0, 8.0)]


@pytest.mark.parametrize("reply", ["8 7\n8 7\n9 8\nonly three score lines", "8 7\n8 7\n9 8", "8 7 8 7 9 8 8 7"])
def test_pair_lines_needs_all_four(reply):
    assert parse.pair_lines(reply) is None


# --- MT-Bench single-answer grading --------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply, expected",
    [
        ("The answer is accurate and detailed. Rating: [[8]]", 8.0),
        ("Rating: [[7.5]]", 7.5),
        ("Explanation... [8]", 8.0),  # FastChat's backup pattern
        ("Rating: 7", 7.0),
        ("rating = **6**", 6.0),
        ("[[9]] and later [[3]]", 9.0),  # the first, as FastChat's re.search
    ],
)
def test_rating(reply, expected):
    assert parse.rating(reply) == expected


@pytest.mark.parametrize("reply", ["", "A fine answer, I would give it a high score.", "[[11]]", "Rating: [[10.5]]"])
def test_rating_refuses_no_or_off_scale_rating(reply):
    assert parse.rating(reply) is None


# --- what a reading means: the model's slot ------------------------------------------------------------
def _ask(reader, slot):
    return Ask("s", "u", Decoding(0.0, 10), reader, "t", slot)


def test_reading_takes_the_model_slot_in_either_order():
    assert read(_ask("pair_first_line", 2), "9 6\n").model == 6.0
    assert read(_ask("pair_first_line", 2), "9 6\n").reference == 9.0
    assert read(_ask("pair_first_line", 1), "9 6\n").model == 9.0
    summary = read(_ask("pair_lines", 1), "8 7\n6 7\n9 8\n7 7\n")
    assert summary.model == pytest.approx((8 + 6 + 9 + 7) / 4)
    assert dict(summary.metrics) == dict(zip(SUMMARY_METRICS, (8.0, 6.0, 9.0, 7.0)))
    assert read(_ask("rating", 0), "Rating: [[4]]").model == 4.0
    assert read(_ask("rating", 0), "no rating") is None


# --- GPT-4's real replies to LLM-KICK's prompts -----------------------------------------------------
def test_every_instruction_review_llmkick_read_is_read_the_same():
    reviews = records("llmkick_vicuna7b_dense_gpt4_reviews.jsonl")
    read_by_repo = [r for r in reviews if r["score"] != [-1, -1]]
    assert len(read_by_repo) == 66
    for review in read_by_repo:
        assert parse.pair_first_line(review["text"]) == tuple(review["score"]), review["question_id"]


def test_instruction_reviews_llmkick_could_not_read():
    """The repo dropped 14 of 80 reviews: 9 failed requests ("error") and 5 real replies its parser
    could not read (2 coding "8.5/10 for Assistant 1, ...", all 3 math). Ours reads every real reply
    with the parser of its prompt."""
    reviews = records("llmkick_vicuna7b_dense_gpt4_reviews.jsonl")
    categories = {
        json.loads(line)["question_id"]: json.loads(line)["category"]
        for line in (Path(parse.__file__).parents[2] / "fixtures/mt_bench/llmkick_conversation_questions.jsonl")
        .read_text()
        .splitlines()
    }
    unread = [r for r in reviews if r["score"] == [-1, -1]]
    placeholders = [r for r in unread if r["text"] == "error"]
    real = [r for r in unread if r["text"] != "error"]
    assert len(placeholders) == 9 and len(real) == 5
    readers = {"math": parse.pair_tuple}
    for review in real:
        reader = readers.get(categories[review["question_id"]], parse.pair_first_line)
        assert reader(review["text"]) is not None, review["text"][:80]
    math = [r for r in reviews if categories[r["question_id"]] == "math"]
    assert [parse.pair_tuple(r["text"]) for r in math] == [(6.0, 6.0), (10.0, 1.0), (10.0, 4.0)]


def test_every_summary_review_is_read_as_llmkick_read_it():
    reviews = records("llmkick_summary_gpt4_reviews.jsonl")
    assert len(reviews) == 90
    for review in reviews:
        expected = [tuple(review["score"][k]) for k in ("coherence", "consistent", "fluency", "relevance")]
        assert parse.pair_lines(review["text"]) == expected, review["question_id"]


# --- never a crash --------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parsers_never_crash_on_any_text(text):
    for parser in PARSERS:
        found = parser(text)
        assert found is None or isinstance(found, (float, tuple, list))


score_text = st.sampled_from(
    [
        "1",
        "2",
        "7",
        "8.5",
        "10",
        "0",
        "11",
        "2023",
        "(",
        ")",
        ",",
        "/10",
        "[[",
        "]]",
        "[",
        "]",
        "Assistant 1",
        "Assistant 2",
        "Rating:",
        " ",
        "\n",
        ".",
        "**",
        "-",
        "inf",
        "nan",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(score_text, max_size=40).map("".join))
def test_parsers_never_crash_on_score_like_text_and_stay_on_scale(text):
    for parser in PARSERS:
        found = parser(text)
        values = (
            []
            if found is None
            else [found]
            if isinstance(found, float)
            else [v for pair in (found if isinstance(found, list) else [found]) for v in pair]
        )
        assert all(0.0 <= v <= 10.0 for v in values)


@settings(max_examples=200, deadline=None)
@given(st.floats(1, 10).map(lambda x: round(x, 1)), st.floats(1, 10).map(lambda x: round(x, 1)), st.text(max_size=60))
def test_two_scores_on_the_first_line_are_read_back(first, second, prose):
    reply = f"{first:g} {second:g}\n{prose}"
    assert parse.pair_first_line(reply) == (first, second)
    assert parse.rating(f"{prose.replace('[', '(')}\nRating: [[{first:g}]]") == first


# --- the three misreads: read by the names, or refused (re-asked) ----------------------------------------
@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Assistant 2 receives 9, Assistant 1 receives 3\nexplanation", (3.0, 9.0)),
        ("Assistant 2: 9/10, Assistant 1: 3/10", (3.0, 9.0)),
        ("9 for Assistant 2, 3 for Assistant 1.", (3.0, 9.0)),
        ("Assistant 2 and Assistant 1 get 9 and 3 respectively", (3.0, 9.0)),
        ("Assistant B: 7, Assistant A: 4", (4.0, 7.0)),
    ],
)
def test_scores_go_to_the_assistant_named_beside_them(reply, expected):
    assert parse.pair_first_line(reply) == expected
    assert parse.pair_lines("\n".join([reply.splitlines()[0]] * 4)) == [expected] * 4


def test_a_tuple_of_the_worked_solution_is_not_the_verdict():
    solution_only = "The two lines meet at the point (2, 3).\nI would give 8 to Assistant 1 and 6 to Assistant 2."
    assert parse.pair_tuple(solution_only) is None  # refused: asked again, never read as (2, 3)
    after = "Scores: (8, 6).\nCheck: the lines meet at (2, 3) as Assistant 1 says."
    assert parse.pair_tuple(after) == (8.0, 6.0)  # the last tuple given as scores, not the last tuple
    assert parse.pair_tuple("Work: x in (1, 4).\n(7, 5)") == (7.0, 5.0)  # alone on its line


@pytest.mark.parametrize("reply", ["Given the rating 1 to 10, I'd say 7", "On a rating: 1-10 basis it is good"])
def test_the_start_of_a_range_is_no_rating(reply):
    assert parse.rating(reply) is None
    assert parse.rating(reply + "\nRating: [[7]]") == 7.0


@pytest.mark.parametrize(
    "reader, reply, said",
    [
        ("pair_lines", "8 7 8 8\nall good", "Line 1 of your reply, '8 7 8 8' holds 4 numbers, not two scores."),
        ("pair_lines", "8 7\n8 7", "Your reply has 2 lines, not the four score lines."),
        ("pair_first_line", "Assistant 1 is better.\n9 8", "'Assistant 1 is better.' holds no score"),
        ("pair_first_line", "11 8", "'11 8' holds 11, which is off the 1 to 10 scale"),
        ("pair_tuple", "x = (2, 3)", "ends with 'x = (2, 3)', not with the tuple of the two scores"),
        ("rating", "Given the rating 1 to 10, I'd say 7", "no rating in the form [[rating]]"),
        ("rating", "  ", "Your reply was empty."),
    ],
)
def test_what_was_wrong_is_said_quoting_the_reply(reader, reply, said):
    assert said in parse.problem(reader, reply)
