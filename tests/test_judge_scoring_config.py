"""--kick-judge-scoring and --kick-judge-explain: defaults per judge, and every bad value named."""

import pytest
from test_judge_config import config, no_openai_env  # noqa: F401  (the fixture clears the OpenAI variables)

from pytest_kick.errors import KickError

OPENAI = {"judge": "openai:m", "judge_url": "http://h:1/v1"}


def test_probability_is_the_default_for_a_local_judge_text_for_a_served_one():
    local = config(judge="local:tiny-random-llama")
    assert (local.judge_scoring, local.judge_explain) == ("probability", False)
    assert config(**OPENAI).judge_scoring == "text"
    assert config(judge_scoring="probability", **OPENAI).judge_scoring == "probability"
    assert config(judge="local:tiny-random-llama", judge_scoring="text").judge_scoring == "text"
    assert config(judge="local:tiny-random-llama", judge_explain="true").judge_explain


def test_a_scoring_that_does_not_exist():
    with pytest.raises(KickError, match="^--kick-judge-scoring: 'logits' is not one of probability, text"):
        config(judge="local:tiny-random-llama", judge_scoring="logits")


@pytest.mark.parametrize("name, value", [("judge-scoring", "text"), ("judge-explain", "true")])
def test_scoring_options_without_a_judge(name, value):
    with pytest.raises(KickError, match=f"^--kick-{name} applies to an? .*local:<model> judge, not --kick-judge rouge"):
        config(**{name.replace("-", "_"): value})


def test_explain_applies_to_a_local_judge_scoring_by_probability():
    with pytest.raises(KickError, match="^--kick-judge-explain applies to a local: judge scoring by probability"):
        config(judge="local:tiny-random-llama", judge_scoring="text", judge_explain="true")
    with pytest.raises(
        KickError, match="^--kick-judge-explain applies to a local:<model> judge, not --kick-judge openai"
    ):
        config(judge_explain="true", judge_scoring="probability", **OPENAI)
