"""In-context summarization: LLM-KICK's prompts, @highlight removal, ROUGE scoring, the scorer seam."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.errors import KickError
from pytest_kick.tasks import summarization
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.scorers import RougeScorer, rouge
from pytest_kick.tasks.summarization import Summarization, highlights, load_stories, strip_highlights

SMALL = Summarization("small")
INSTRUCTION = (
    "Summarize the given story in less than 150 words while preserving high coherence, consistency, "
    "fluency, and relevance.\n\n"
)
LANDSLIDE = "cnn_dailymail/llmkick_prompt/1"


def story(task, item_id):
    return {s.id: s for s in task.load(Settings()).examples}[item_id]


def test_variants_are_llm_kicks_buckets():
    names = [Summarization(v).name for v in ("small", "medium", "large")]
    assert names == ["summarization:small", "summarization:medium", "summarization:large"]
    assert Summarization("medium").bucket == "mid"
    for variant in ("small", "medium", "large"):
        dataset = Summarization(variant).load(Settings())
        assert len(dataset.examples) == 30
        assert dataset.source == "bundled:cnn_dailymail/llmkick_summarization_prompts.jsonl"
    with pytest.raises(ValueError):
        Summarization("mid")


def test_kick_prompt_is_llm_kicks_verbatim_with_its_highlights():
    landslide = story(SMALL, LANDSLIDE)
    [request] = SMALL.requests([landslide], [], Settings(protocol="kick"))
    ((role, text),) = request.messages
    assert role == "user" and text == landslide.prompt
    assert text.startswith(INSTRUCTION + "(CNN) -- A landslide buried 83 workers in a mining area")
    assert text.endswith(
        "the regional government said.@highlightThe incident occurred around 6 a.m., Xinhua News "
        "Agency says@highlightThe landslide extends three kilometers, or almost two miles"
    )


def test_strict_prompt_drops_the_highlights():
    landslide = story(SMALL, LANDSLIDE)
    [request] = SMALL.requests([landslide], [], Settings())
    ((_, text),) = request.messages
    assert "@highlight" not in text and "Xinhua News Agency says" not in text
    assert text.endswith(
        "(almost two miles) and was made up of about 2 million cubic meters (2.6 million cubic "
        "yards) of mud, rock and other debris, the regional government said."
    )
    assert landslide.answers == (
        "The incident occurred around 6 a.m., Xinhua News Agency says\n"
        "The landslide extends three kilometers, or almost two miles",
    )
    assert landslide.question == text[len(INSTRUCTION) :]


def test_highlight_helpers():
    prompt = "Summarize.\n\nStory one.Story two.@highlightFirst point @highlight Second point"
    assert strip_highlights(prompt) == "Summarize.\n\nStory one.Story two."
    assert highlights(prompt) == ["First point", "Second point"]
    assert strip_highlights("no markup ") == "no markup"


def test_every_bundled_prompt_has_a_reference_and_loses_it_under_strict():
    for variant in ("small", "medium", "large"):
        for s in Summarization(variant).load(Settings()).examples:
            assert s.answers[0] and "@highlight" not in strip_highlights(s.prompt)
            assert s.prompt.startswith("Summarize the given ")


def test_plain_prompt_fallback_is_fastchats_vicuna_template():
    landslide = story(SMALL, LANDSLIDE)
    [request] = SMALL.requests([landslide], [], Settings())
    assert request.prompt == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions. USER: "
        + request.messages[0][1]
        + " ASSISTANT:"
    )
    assert request.max_new_tokens == 256 and request.stop == ()


def test_rouge_scoring_and_details():
    landslide = story(SMALL, LANDSLIDE)
    reference = landslide.answers[0]
    assert SMALL.metric == "rougeL" and SMALL.floor == 0.0
    assert SMALL.score(landslide, None, "  " + reference + "\n", Settings()) == pytest.approx(1.0)
    assert SMALL.score(landslide, None, "", Settings()) == 0.0
    partial = SMALL.score(landslide, None, "The landslide occurred at 6 a.m.", Settings())
    assert 0.0 < partial < 1.0
    details = SMALL.details([landslide, landslide], [1.0, 0.0], [reference, ""])
    assert details == pytest.approx({"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5})


@given(st.text(max_size=80))
def test_rouge_of_identical_texts_is_one(text):
    scores = rouge(text, text)
    if any(ch.isascii() and ch.isalnum() for ch in text):  # rouge-score keeps only [a-z0-9] tokens
        assert scores == pytest.approx({"rouge1": 1.0, "rouge2": scores["rouge2"], "rougeL": 1.0})
        assert scores["rouge2"] in (0.0, pytest.approx(1.0))  # a single token has no bigram
    else:
        assert scores == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


@given(st.text(max_size=60), st.text(max_size=60))
def test_rouge_is_a_fraction(a, b):
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in rouge(a, b).values())


class LengthJudge:
    """A stand-in judge: the seam a real LLM judge uses."""

    name = "judge-length"
    floor = 0.0
    needs_reference = False

    def score(self, item, replies):
        return float(len(replies[0].split()) <= 150)

    def figures(self, item, replies):
        return {"words": float(len(replies[0].split()))}

    def fingerprint(self):
        return "length<=150"


def test_a_judge_plugs_in_as_the_scorer():
    task = Summarization("small", scorer=LengthJudge())
    landslide = story(task, LANDSLIDE)
    assert task.metric == "judge-length"
    assert task.score(landslide, None, "short summary", Settings()) == 1.0
    assert task.details([landslide], [1.0], ["two words"]) == {"words": 2.0}
    assert task.template_hash(Settings()) != SMALL.template_hash(Settings())


def test_template_hash_depends_on_protocol_bucket_and_budget():
    hashes = {
        Summarization(v, max_new_tokens=n).template_hash(Settings(protocol=p))
        for v in ("small", "large")
        for p in ("strict", "kick")
        for n in (64, 256)
    }
    assert len(hashes) == 8


def test_zero_shot_and_deterministic_subset():
    dataset = SMALL.load(Settings())
    shots, items = SMALL.split(dataset, Settings(shots=3, limit=5))
    assert shots == [] and len(items) == 5
    assert SMALL.split(dataset, Settings(shots=3, limit=5)) == (shots, items)


def test_prompt_without_highlights_is_a_clear_error(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"id": "p1", "length_bucket": "small", "prompt": "Summarize.\n\nNo markup."}) + "\n")
    with pytest.raises(KickError, match=r"prompts.jsonl record 'p1': the prompt has no @highlight"):
        load_stories(path)


def test_missing_or_malformed_bundled_file_names_it(monkeypatch, tmp_path):
    monkeypatch.setattr(summarization, "bundled_dir", lambda: tmp_path)
    with pytest.raises(KickError, match="llmkick_summarization_prompts.jsonl is missing"):
        SMALL.load(Settings())
    (tmp_path / "cnn_dailymail").mkdir()
    (tmp_path / "cnn_dailymail" / "llmkick_summarization_prompts.jsonl").write_text('{"id": "p1"}\n')
    with pytest.raises(KickError, match=r"llmkick_summarization_prompts.jsonl:1: record lacks length_bucket, prompt"):
        SMALL.load(Settings())


def test_scorer_rejects_items_without_reference():
    from pytest_kick.tasks.instruction import Conversation

    item = Conversation("c", "q", (), ("q",), (), "writing")
    with pytest.raises(KickError, match="no reference"):
        RougeScorer().score(item, ("reply",))


@pytest.mark.slow
def test_smollm2_summarises_two_small_stories(smollm2):
    from pytest_kick.engines.local import LocalEngine as Engine

    task = Summarization("small", max_new_tokens=48)  # a short budget: the mechanics, not the quality
    engine = Engine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=8)
    settings = Settings(limit=2)
    _, items = task.split(task.load(settings), settings)
    requests = task.requests(items, [], settings)
    assert all(engine.uses_chat(r) for r in requests)
    outputs = engine.generate(requests)
    scores = [task.score(i, r, o, settings) for i, r, o in zip(items, requests, outputs)]
    assert all(o.strip() for o in outputs) and all(0.0 < s < 1.0 for s in scores), (outputs, scores)
    assert set(task.details(items, scores, outputs)) == {"rouge1", "rouge2", "rougeL"}
