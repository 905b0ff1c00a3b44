"""--kick-judge and its companions: every bad value a KickError naming the option, before anything loads."""

import importlib.util
import re
from pathlib import Path

import pytest

from pytest_kick.config import OPTIONS, build
from pytest_kick.errors import KickError


def values(**given):
    raw = {opt.name: None for opt in OPTIONS}
    raw.update({k.replace("_", "-"): v for k, v in given.items()})
    return raw


def config(**given):
    return build(values(model="tiny-random-llama", **given), Path("."))


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "MY_JUDGE_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_rouge_is_the_default_and_needs_nothing():
    cfg = config()
    assert (cfg.judge, cfg.judge_url, cfg.judge_key_env, cfg.judge_concurrency) == ("rouge", None, None, 8)


@pytest.mark.parametrize("spelling", ["gpt-4", "openai", "openai:", "local:", "rouge2", "OpenAI:gpt-4"])
def test_a_misspelled_judge_says_what_is_accepted(spelling):
    with pytest.raises(KickError, match=r"^--kick-judge: .*expected rouge, openai:<model> .* or local:<model>"):
        config(judge=spelling)


def test_an_openai_judge_needs_its_endpoint(monkeypatch):
    with pytest.raises(
        KickError,
        match=r"--kick-judge openai:gpt-4 needs the endpoint: --kick-judge-url URL or "
        r"\$OPENAI_BASE_URL",
    ):
        config(judge="openai:gpt-4")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1/chat/completions")
    assert config(judge="openai:gpt-4").judge_url == "http://127.0.0.1:8000/v1"
    assert config(judge="openai:m", judge_url="http://host:9000").judge_url == "http://host:9000/v1"


def test_openais_own_endpoint_needs_a_key_named_never_shown(monkeypatch):
    with pytest.raises(KickError, match="needs an API key: set OPENAI_API_KEY, or name another variable"):
        config(judge="openai:gpt-4", judge_url="https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    assert config(judge="openai:gpt-4", judge_url="https://api.openai.com/v1").judge_key_env is None


def test_a_named_key_variable_must_be_set(monkeypatch):
    with pytest.raises(KickError, match=r"^--kick-judge-key-env MY_JUDGE_KEY: the variable is not set"):
        config(judge="openai:m", judge_url="http://h:1/v1", judge_key_env="MY_JUDGE_KEY")
    with pytest.raises(KickError, match="is not an environment variable name"):
        config(judge="openai:m", judge_url="http://h:1/v1", judge_key_env="sk-abc")
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret-value")
    cfg = config(judge="openai:m", judge_url="http://h:1/v1", judge_key_env="MY_JUDGE_KEY")
    assert cfg.judge_key_env == "MY_JUDGE_KEY" and "sk-secret-value" not in repr(cfg)


@pytest.mark.parametrize("url", ["http://user:sk-123@host/v1", "http://host/v1?key=sk-123"])
def test_credentials_in_the_url_are_refused(url):
    with pytest.raises(
        KickError, match="without user, password or query; the key goes in an environment variable"
    ) as err:
        config(judge="openai:m", judge_url=url)
    assert "sk-123" not in str(err.value)


def test_not_a_url():
    with pytest.raises(KickError, match="^--kick-judge-url: 'ftp://x' is not an http"):
        config(judge="openai:m", judge_url="ftp://x")


def test_without_the_openai_package_the_message_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openai" else real(name, *a))
    with pytest.raises(KickError, match=r"needs the openai package: pip install 'pytest-kick\[judge\]'"):
        config(judge="openai:gpt-4", judge_url="http://h:1/v1")


@pytest.mark.parametrize(
    "name, value",
    [
        ("judge-url", "http://h:1/v1"),
        ("judge-key-env", "X"),
        ("judge-concurrency", "4"),
        ("judge-timeout", "5"),
        ("judge-retries", "1"),
    ],
)
def test_openai_options_without_an_openai_judge(name, value):
    with pytest.raises(KickError, match=f"^--kick-{name} applies to an openai:<model> judge, not --kick-judge rouge"):
        config(**{name.replace("-", "_"): value})


@pytest.mark.parametrize("value, message", [("0", "must be at least 1 (got 0)"), ("many", "'many' is not a whole")])
def test_concurrency(value, message):
    with pytest.raises(KickError, match="^--kick-judge-concurrency: " + re.escape(message)):
        config(judge="openai:m", judge_url="http://h:1/v1", judge_concurrency=value)
    assert config(judge="openai:m", judge_url="http://h:1/v1", judge_concurrency="3").judge_concurrency == 3


def test_a_local_judge_is_a_known_model():
    assert config(judge="local:qwen2.5-coder-0.5b").judge == "local:qwen2.5-coder-0.5b"
    with pytest.raises(KickError, match="^--kick-judge local:no-such-model: unknown model 'no-such-model'"):
        config(judge="local:no-such-model")


def test_a_judge_needs_a_task_it_scores():
    with pytest.raises(
        KickError, match="--kick-judge scores summarization and instruction, and --kick-tasks selects neither"
    ):
        config(judge="local:tiny-random-llama", tasks="mmlu")
    assert config(judge="local:tiny-random-llama", tasks="mmlu,instruction:vicuna").tasks == (
        "mmlu",
        "instruction:vicuna",
    )


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("judge-timeout", "0", "must be more than 0 seconds (got 0)"),
        ("judge-timeout", "soon", "'soon' is not a number of seconds"),
        ("judge-retries", "-1", "must be at least 0 (got -1)"),
        ("judge-retries", "two", "'two' is not a whole"),
    ],
)
def test_timeout_and_retries_are_checked_naming_the_flag(name, value, message):
    with pytest.raises(KickError, match=f"^--kick-{name}: " + re.escape(message)):
        config(judge="openai:m", judge_url="http://h:1/v1", **{name.replace("-", "_"): value})


@pytest.mark.parametrize("scoring", ["text", "probability"])
def test_timeout_and_retries_reach_the_judge_backend(monkeypatch, scoring):
    pytest.importorskip("openai")
    from pytest_kick.judge.session import openai_judge

    given = dict(judge="openai:m", judge_url="http://h:1/v1", judge_scoring=scoring)
    cfg = config(**given, judge_timeout="2.5", judge_retries="0")
    assert (cfg.judge_timeout, cfg.judge_retries) == (2.5, 0)
    backend = openai_judge("m", cfg, None, None)
    assert (backend.timeout, backend.retries) == (2.5, 0)
    default = openai_judge("m", config(**given), None, None)
    assert (default.timeout, default.retries) == (120.0, 4)
