"""In-context retrieval QA (TriviaQA): LLM-KICK's prompts, official normalisation, both protocols, data."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.errors import KickError
from pytest_kick.tasks import icrqa
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.icrqa import ICRQA, TriviaItem, containment, exact_match, f1, normalize_answer, prediction

CLOSED, OPEN = ICRQA("closed"), ICRQA("open")
HINGIS = TriviaItem(
    "tc_1250",
    "Melanie Molitor is the mom of which tennis world NO 1?",
    ("Martina Hingis", "The Swiss Miss", "Hingis"),
    ("martina hingis", "swiss miss", "hingis"),
    "Martina Hingis (born 30 September 1980) is a Swiss former professional tennis player. "
    "Her mother, Melanie Molitor, coached her.",
)


def test_names_and_family():
    assert (CLOSED.name, OPEN.name, CLOSED.family, OPEN.family) == ("icrqa:closed", "icrqa:open", "icrqa", "icrqa")
    assert CLOSED.floor == 0.0 and CLOSED.higher_is_better
    with pytest.raises(ValueError):
        ICRQA("half-open")


def test_prompts_are_llm_kicks():
    """incontext_qa/main_icrqa.py: gen_prompt, and f"{context[:3072]}\\n\\n{prompt_end}".strip()."""
    [closed] = CLOSED.requests([HINGIS], [], Settings())
    assert closed.prompt == "Answer these questions:\n\nQ: Melanie Molitor is the mom of which tennis world NO 1?\nA:"
    [opened] = OPEN.requests([HINGIS], [], Settings())
    assert opened.prompt == (
        HINGIS.context + "\n\nBased on these texts, answer these questions:\n\n"
        "Q: Melanie Molitor is the mom of which tennis world NO 1?\nA:"
    )
    for request in (closed, opened):  # plain text (LLM-KICK prompted Vicuna without a template), 32 tokens
        assert request.messages == () and request.max_new_tokens == 32 and request.stop == ()


def test_open_book_context_is_cut_at_3072_characters_and_stripped():
    long = TriviaItem("x", "Q?", ("a",), (), "\n  " + "w" * 5000)
    prompt = OPEN.prompt(long)
    assert prompt.startswith("w" * 3069 + "\n\nBased on these texts")  # 3 leading whitespace chars, then stripped


def test_shots_are_question_answer_pairs_after_the_header():
    shot = TriviaItem("s", "What is the capital of France?", ("Paris",), ("paris",), "Paris is the capital.")
    assert CLOSED.prompt(HINGIS, [shot]) == (
        "Answer these questions:\n\nQ: What is the capital of France?\nA: Paris\n\n"
        "Q: Melanie Molitor is the mom of which tennis world NO 1?\nA:"
    )


def test_official_normalisation():
    assert normalize_answer("The  Swiss-Miss!") == "swiss miss"
    assert normalize_answer("Sunset_Blvd.") == "sunset blvd"
    assert normalize_answer("‘An’ apple`s") == "apple s"
    assert normalize_answer("Martina Hingisová") == "martina hingisová"  # accents kept, as upstream


@pytest.mark.parametrize(
    "output, strict, kick",
    [
        (" Martina Hingis.", 1.0, 1.0),
        ("Hingis", 1.0, 1.0),  # any alias
        ("the SWISS miss", 1.0, 1.0),
        ("It was Martina Hingis, of course", 0.0, 1.0),  # alias inside the prediction
        ("Martina", 0.0, 1.0),  # prediction inside an alias
        ("Steffi Graf", 0.0, 0.0),
        ("\n\nHingis\nSteffi Graf", 1.0, 1.0),  # first line of the stripped output
        ("Steffi Graf\nHingis", 0.0, 0.0),
        ("", 0.0, 1.0),  # LLM-KICK quirk: the empty prediction is contained in every alias
    ],
)
def test_scoring_protocols(output, strict, kick):
    [request] = CLOSED.requests([HINGIS], [], Settings())
    assert CLOSED.score(HINGIS, request, output, Settings()) == strict
    assert CLOSED.score(HINGIS, request, output, Settings(protocol="kick")) == kick


def test_f1_and_details():
    assert f1("Martina Hingis", HINGIS.truths) == 1.0
    assert f1("Martina Navratilova", HINGIS.truths) == pytest.approx(2 * 0.5 * 0.5 / (0.5 + 0.5))
    assert f1("", HINGIS.truths) == 0.0
    details = CLOSED.details([HINGIS, HINGIS], [1.0, 0.0], ["Hingis", "It was Martina Hingis"])
    assert details == {"exact_match": 0.5, "containment": 1.0, "f1": pytest.approx((1 + 2 * 0.5 * 1 / 1.5) / 2)}


def test_truths_fall_back_to_normalised_answers():
    item = TriviaItem("y", "q", ("The Beatles",), (), "")
    assert item.truths == ("beatles",)


text = st.text(max_size=30)


@given(text)
def test_normalisation_is_idempotent(s):
    assert normalize_answer(normalize_answer(s)) == normalize_answer(s)


@given(text, st.lists(text, min_size=1, max_size=3))
def test_exact_match_implies_f1_one_and_containment(pred, truths):
    score = f1(pred, truths)
    assert 0.0 <= score <= 1.0
    if exact_match(pred, truths):
        assert containment(pred, truths)
        assert score == 1.0 or normalize_answer(pred) == ""


@given(text, text)
def test_containment_is_symmetric(a, b):
    assert containment(a, [b]) == containment(b, [a])


@given(st.text(max_size=60))
def test_prediction_is_one_line(output):
    assert "\n" not in prediction(output)


# --- data ------------------------------------------------------------------------------------


def test_bundled_data_names_reconstructed_passages():
    dataset = CLOSED.load(Settings())
    assert len(dataset.examples) == 114 and len(dataset.content_hash) == 64
    assert dataset.source == (
        "bundled:triviaqa/triviaqa_verified_wikipedia_dev_reconstructed_context.jsonl"
        " (passages reconstructed from Wikipedia)"
    )
    assert all(e.answers and e.truths and e.context for e in dataset.examples)


def test_both_variants_evaluate_the_same_questions_and_shots():
    settings = Settings(limit=10, shots=2)
    shots_c, items_c = CLOSED.split(CLOSED.load(settings), settings)
    shots_o, items_o = OPEN.split(OPEN.load(settings), settings)
    assert [i.id for i in items_c] == [i.id for i in items_o] and len(items_c) == 10
    assert [s.id for s in shots_c] == [s.id for s in shots_o] and len(shots_c) == 2
    assert not {s.id for s in shots_c} & {i.id for i in items_c}


def _write(folder: Path, rows, name="mine.jsonl"):
    (folder / "triviaqa").mkdir(exist_ok=True)
    (folder / "triviaqa" / name).write_text("\n".join(json.dumps(r) for r in rows))


def test_local_data_dir(tmp_path):
    rows = [{"id": f"t{i}", "question": f"q{i}?", "answers": [f"A{i}"], "context": f"c{i}"} for i in range(3)]
    _write(tmp_path, rows)
    dataset = OPEN.load(Settings(data_dir=tmp_path))
    assert [e.id for e in dataset.examples] == ["t0", "t1", "t2"] and dataset.source.startswith("local:")
    assert dataset.examples[0].truths == ("a0",)


def test_data_dir_without_triviaqa_falls_back_to_the_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert CLOSED.load(Settings(data_dir=tmp_path)).source.startswith("bundled:triviaqa/")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "x", "question": "q", "answers": ["a"]}', "record lacks context"),
        ('{"id": "x", "question": "q", "answers": "a", "context": ""}', "answers must be a non-empty list"),
        ('{"id": "x", "question": "q", "answers": [""], "context": ""}', "only empty strings"),
        ('{"id": "x", oops', "not valid JSON"),
    ],
)
def test_malformed_data_names_the_file(tmp_path, line, message):
    (tmp_path / "triviaqa").mkdir()
    (tmp_path / "triviaqa" / "bad.jsonl").write_text(line + "\n")
    with pytest.raises(KickError, match=message) as err:
        CLOSED.load(Settings(data_dir=tmp_path))
    assert "bad.jsonl" in str(err.value)


def test_missing_bundled_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(icrqa, "bundled_dir", lambda: tmp_path)
    monkeypatch.setattr(icrqa, "hub_rows", lambda *a, **k: None)
    with pytest.raises(KickError, match="triviaqa_verified_wikipedia_dev_reconstructed_context.jsonl is missing"):
        CLOSED.load(Settings())


def hub_row(qid, wiki=("W" * 2000,), web=("B" * 2000,)):
    return {
        "question_id": qid,
        "question": "Who?",
        "answer": {
            "value": "Sunset Boulevard",
            "aliases": ["Sunset Blvd", "Sunset Boulevard"],
            "normalized_aliases": ["sunset blvd", "sunset boulevard"],
        },
        "entity_pages": {"filename": [f"{qid}.txt"] * len(wiki), "wiki_context": list(wiki)},
        "search_results": {"filename": [f"{qid}.html"] * len(web), "search_context": list(web)},
    }


def test_hub_rows_give_llm_kicks_context(monkeypatch):
    rows = [hub_row("tc_1"), hub_row("tc_2", wiki=()), hub_row("tc_3", wiki=("w1", "w2"), web=())]
    monkeypatch.setattr(icrqa, "hub_rows", lambda *a, **k: (rows, "hub:trivia_qa/rc@validation", "fp"))
    dataset = OPEN.load(Settings())
    first, second, third = dataset.examples
    assert dataset.source == "hub:trivia_qa/rc@validation"
    assert first.context == "W" * 2000 + "B" * 1072  # wiki evidence, then web evidence, first 3072 characters
    assert second.context == "B" * 2000 and third.context == "w1"
    assert first.answers == ("Sunset Boulevard", "Sunset Blvd") and first.truths == ("sunset blvd", "sunset boulevard")


def test_unexpected_hub_layout_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(icrqa, "hub_rows", lambda *a, **k: ([{"question_id": "q", "question": "?"}], "hub", "fp"))
    with pytest.raises(KickError, match="unexpected layout"):
        CLOSED.load(Settings())


def test_template_hash_depends_on_variant_and_protocol():
    hashes = {t.template_hash(Settings(protocol=p)) for t in (CLOSED, OPEN) for p in ("strict", "kick")}
    assert len(hashes) == 4


# --- a real model ------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_answers_closed_and_open_book(smollm2):
    from pytest_kick.engines.local import LocalEngine as Engine

    engine = Engine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=8)
    settings = Settings(limit=2)
    for task in (CLOSED, OPEN):
        shots, items = task.split(task.load(settings), settings)
        requests = task.requests(items, shots, settings)
        outputs = engine.generate(requests)
        scores = [task.score(i, r, o, settings) for i, r, o in zip(items, requests, outputs)]
        assert all(s in (0.0, 1.0) for s in scores)
        assert any(prediction(o) for o in outputs), outputs
        assert set(task.details(items, scores, outputs)) == {"exact_match", "containment", "f1"}
