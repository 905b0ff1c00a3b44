"""Factoid QA: prompts as in LLM-KICK, both scoring protocols, data loading and subsets."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.errors import KickError
from pytest_kick.tasks import get
from pytest_kick.tasks.base import Example, Settings
from pytest_kick.tasks.data import read_jsonl, subset
from pytest_kick.tasks.factoid_qa import kick_match
from pytest_kick.tasks.normalize import contains_answer, normalize

TASK = get("factoid_qa")
GHANA = Example("q1", "100 pesewas equalling 1 cedi are the units of currency of which African country?", ("ghana",))


def test_kick_prompt_is_the_llm_kick_prompt():
    [request] = TASK.requests([GHANA], [], Settings(protocol="kick"))
    assert request.prompt == (
        "Please give answer to this question: 100 pesewas equalling 1 cedi are the units "
        "of currency of which African country?\nThe answer is "
    )
    assert request.length_factor == 2 and request.stop == ()


def test_strict_prompt_offers_chat_turns_and_a_plain_fallback():
    shot = Example("s", "Who is the Prime Minister of Canada?", ("stephen harper",))
    [request] = TASK.requests([GHANA], [shot], Settings(protocol="strict", shots=1))
    assert request.messages == (
        ("user", "Please give answer to this question: Who is the Prime Minister of Canada?"),
        ("assistant", "The answer is Stephen Harper."),
        ("user", "Please give answer to this question: " + GHANA.question),
    )
    assert request.prompt.endswith("The answer is") and request.stop == ("\n",)
    assert request.prompt.startswith(
        "Please give answer to this question: Who is the Prime Minister of Canada?\nThe answer is stephen harper\n\n"
    )


@pytest.mark.parametrize(
    "output, correct",
    [
        (" Ghana.", True),
        ("The answer is GHANA!", True),
        ("ghana\nNigeria", True),
        ("Nigeria\nGhana", False),  # only the first line counts
        ("Ghanaian cedi", False),  # whole words only
        ("", False),
    ],
)
def test_strict_scoring(output, correct):
    [request] = TASK.requests([GHANA], [], Settings())
    assert TASK.score(GHANA, request, output, Settings()) == float(correct)


def test_kick_scoring_reproduces_the_repo_quirks():
    [request] = TASK.requests([GHANA], [], Settings(protocol="kick"))
    settings = Settings(protocol="kick")
    assert TASK.score(GHANA, request, "Nigeria. Or Ghanaian?", settings) == 1.0  # substring, case-folded
    assert kick_match(["new york"], "It is NewYork") is True  # spaces removed
    # the prompt is searched too: an answer inside the question scores whatever the model says
    inside = Example("q2", "Which country is home to the Ghana Football Association?", ("ghana",))
    [req2] = TASK.requests([inside], [], settings)
    assert TASK.score(inside, req2, "I don't know", settings) == 1.0
    assert TASK.score(inside, req2, "I don't know", Settings()) == 0.0


def test_kick_scoring_with_shots_never_reads_the_shots_answers():
    """The repository had no shots: an empty output must not score because a shot's answer matches the item's."""
    settings = Settings(protocol="kick", shots=1)
    shot = Example("s1", "Which country's capital is Accra?", ("ghana",))
    [request] = TASK.requests([GHANA], [shot], settings)
    assert "ghana" in request.prompt.lower()  # the shot is in the prompt ...
    assert TASK.score(GHANA, request, "", settings) == 0.0  # ... and never scores for the item
    assert TASK.score(GHANA, request, "Ghana", settings) == 1.0
    assert TASK.template_hash(settings) != TASK.template_hash(Settings())


def test_normalize():
    assert normalize("The  U.S.A.!") == "u s"  # punctuation to spaces, articles removed
    assert normalize("An Apple a day") == "apple day"
    assert contains_answer("It's the Eiffel Tower.", ["eiffel tower"])


@given(st.text(max_size=40), st.lists(st.text(max_size=10), max_size=3))
def test_scorers_never_crash(text, answers):
    contains_answer(text, answers)
    kick_match(answers, text)
    normalize(text)


def test_bundled_data_loads_with_provenance():
    dataset = TASK.load(Settings())
    assert len(dataset.examples) == 527
    assert dataset.source == "bundled:freebaseqa/freebaseqa_eval_prerelease_sample.jsonl"
    assert len(dataset.content_hash) == 64
    assert all(e.answers for e in dataset.examples)


def test_subset_is_deterministic_seeded_and_ordered():
    items = list(range(100))
    a, b = subset(items, 10, 0, "factoid_qa"), subset(items, 10, 0, "factoid_qa")
    assert a == b and a == sorted(a) and len(set(a)) == 10
    assert subset(items, 10, 1, "factoid_qa") != a
    assert subset(items, None, 0, "x") == items and subset(items, 500, 0, "x") == items


def test_shots_are_excluded_from_the_evaluated_items():
    dataset = TASK.load(Settings())
    shots, items = TASK.split(dataset, Settings(shots=3, limit=50))
    assert len(shots) == 3 and len(items) == 50
    assert not {s.id for s in shots} & {i.id for i in items}
    assert TASK.split(dataset, Settings(shots=3, limit=50)) == (shots, items)


def test_malformed_data_file_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "question": "q", "answers": ["x"]}\n{"id": oops}\n')
    with pytest.raises(KickError, match=r"bad.jsonl:2: not valid JSON"):
        read_jsonl(path)
    with pytest.raises(KickError, match="is missing"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_local_jsonl_data_dir(tmp_path):
    (tmp_path / "freebaseqa").mkdir()
    rows = [{"id": f"x{i}", "question": f"q{i}?", "answers": [f"a{i}"]} for i in range(4)]
    (tmp_path / "freebaseqa" / "mine.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    dataset = TASK.load(Settings(data_dir=tmp_path))
    assert [e.id for e in dataset.examples] == ["x0", "x1", "x2", "x3"]
    assert dataset.source.startswith("local:")


@pytest.mark.parametrize("answers", ['"paris"', "[]", '[""]', "[3]"])
def test_answers_must_be_a_list_of_strings(tmp_path, answers):
    """A bare string would become letters, an empty answer matches everything: both are refused."""
    (tmp_path / "freebaseqa").mkdir()
    (tmp_path / "freebaseqa" / "bad.jsonl").write_text('{"id": "x", "question": "q?", "answers": %s}\n' % answers)
    with pytest.raises(KickError, match="answers must be a non-empty list of non-empty strings"):
        TASK.load(Settings(data_dir=tmp_path))
