"""Validation of the judge options (--kick-judge and its --kick-judge-* companions), for config.build.

Everything a judge needs is checked here, before any model loads: the spelling, the ``openai`` package
for an ``openai:`` judge, its URL, the key's environment variable (its name only: a key is never read
into a message), and a ``local:`` judge's model name. Messages name what the user wrote, as every
config message does.
"""

from __future__ import annotations

import importlib.util
import os
from urllib.parse import urlsplit

from pytest_kick.config_values import whole_number
from pytest_kick.errors import KickError

JUDGED_FAMILIES = ("summarization", "instruction")
INSTALL = "pip install 'pytest-kick[judge]'"


def judge_settings(values: dict, text: dict, flag, families: list[str]) -> dict:
    """The KickConfig fields of the judge: judge, judge_url, judge_key_env, judge_concurrency.

    ``families`` are the task families the session gates (a judge that scores none of them is a mistake).
    """
    from pytest_kick.judge import parse_spec

    try:
        spec = parse_spec(text["judge"])
    except KickError as err:
        raise KickError(f"{flag('judge')}: {str(err).split(': ', 1)[-1]}") from None
    given = [name for name in ("judge-url", "judge-key-env", "judge-concurrency") if values.get(name) is not None]
    if spec.kind != "openai" and given:
        raise KickError(f"{flag(given[0])} applies to an openai:<model> judge, not {flag('judge')} {text['judge']}")
    found = {"judge": text["judge"].strip(), "judge_url": None, "judge_key_env": None,
             "judge_concurrency": whole_number(flag("judge-concurrency"), text["judge-concurrency"], 1)}
    if spec.kind == "rouge":
        return found
    if not any(f in JUDGED_FAMILIES for f in families):
        raise KickError(f"{flag('judge')} scores summarization and instruction, and {flag('tasks')} selects neither")
    if spec.kind == "local":
        from pytest_kick.models import registry

        try:
            registry.resolve(spec.model)
        except KickError as err:
            raise KickError(f"{flag('judge')} local:{spec.model}: {err}") from None
        return found
    if importlib.util.find_spec("openai") is None:
        raise KickError(f"{flag('judge')} {text['judge']} needs the openai package: {INSTALL}")
    url = values.get("judge-url") or os.environ.get("OPENAI_BASE_URL")
    if not url:
        raise KickError(f"{flag('judge')} {text['judge']} needs the endpoint: --kick-judge-url URL or $OPENAI_BASE_URL "
                        f"(e.g. https://api.openai.com/v1, or your vLLM / llama.cpp server's http://host:8000/v1)")
    where = flag("judge-url") if values.get("judge-url") else "$OPENAI_BASE_URL"
    found["judge_url"] = judge_url(where, url)
    key_env = values.get("judge-key-env")
    if key_env is not None:
        if not key_env.strip() or not key_env.replace("_", "").isalnum():
            raise KickError(f"{flag('judge-key-env')}: {key_env!r} is not an environment variable name")
        if not os.environ.get(key_env):
            raise KickError(f"{flag('judge-key-env')} {key_env}: the variable is not set (it should hold the API key)")
        found["judge_key_env"] = key_env
    elif "api.openai.com" in found["judge_url"] and not os.environ.get("OPENAI_API_KEY"):
        raise KickError(f"{flag('judge')} {text['judge']} at {found['judge_url']} needs an API key: set "
                        f"OPENAI_API_KEY, or name another variable with --kick-judge-key-env")
    return found


def judge_url(where: str, url: str) -> str:
    """The API root of a chat-completions URL; credentials in it are refused (reports print the URL)."""
    from pytest_kick.engines.http import normalize_base_url

    text = url.strip().rstrip("/")
    if text.endswith("/chat/completions"):
        text = text[: -len("/chat/completions")]
    parts = urlsplit(text)
    if parts.username or parts.password or parts.query:
        raise KickError(f"{where}: give the URL without user, password or query; the key goes in an environment "
                        f"variable (OPENAI_API_KEY, or the one --kick-judge-key-env names)")
    try:
        return normalize_base_url(text)
    except KickError as err:
        raise KickError(f"{where}: {err}") from None
