"""Shared test setup.

pytester's in-process runs snapshot sys.modules and drop whatever a run imported; torch cannot be
imported twice in one process, so the heavy modules a kick run touches are imported here, first.
"""

import json

import pytest

from pytest_kick.models.tiny import tiny_random_llama

tiny_random_llama()  # imports torch, transformers and the LLaMA modelling code once, up front


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of tiny-random-llama, seed 0."""
    model, tokenizer, _ = tiny_random_llama(seed=0)
    return model.eval(), tokenizer


@pytest.fixture
def echo_data(pytester):
    """A data dir whose answers stand in the questions: under the kick protocol (which searches prompt +
    output, the LLM-KICK quirk) every model scores 1.0 on it, dense and compressed alike: a deterministic
    "matching" case for plugin mechanics."""
    questions = [{"Question-ID": f"e{i}", "RawQuestion": f"Say the word {w}: which word was that?",
                  "Parses": [{"Answers": [{"AnswersMid": "m", "AnswersName": [w]}]}]}
                 for i, w in enumerate(["apple", "river", "castle", "violin", "pepper", "tiger", "comet", "lantern"])]
    (pytester.path / "echo").mkdir()
    (pytester.path / "echo" / "FreebaseQA-eval.json").write_text(json.dumps({"Questions": questions}))
    return ["--kick-data-dir", "echo", "--kick-protocol", "kick"]
