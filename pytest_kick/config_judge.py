"""Validation of the judge options (--kick-judge and its --kick-judge-* companions), for config.build.

Everything a judge needs is checked here, before any model loads: the spelling (a judge of the registry,
``extensions.judges``), the options it takes, that a judged task is selected, then the judge's own
``settings``: for ``openai:`` the ``openai`` package, its URL, the key's environment variable (its name only:
a key is never read into a message), for ``local:`` the model's name. Messages name what the user wrote, as
every config message does.
"""

from __future__ import annotations

import importlib.util
import os
from urllib.parse import urlsplit

from pytest_kick import extensions
from pytest_kick import tasks as registry_tasks
from pytest_kick.config_served import seconds
from pytest_kick.config_values import boolean, choice, whole_number
from pytest_kick.errors import KickError
from pytest_kick.judge import entry as judge_entry
from pytest_kick.judge import judgeable, parse_spec
from pytest_kick.models import registry

INSTALL = "pip install 'pytest-kick[judge]'"
OPTIONS = (  # the --kick-judge-* options a judge may take
    "judge-url",
    "judge-key-env",
    "judge-concurrency",
    "judge-timeout",
    "judge-retries",
    "judge-scoring",
    "judge-explain",
)
SCORINGS = ("probability", "text")


def judge_settings(values: dict, text: dict, flag, chosen: list) -> dict:
    """The KickConfig fields of the judge: judge, judge_url, judge_key_env, judge_concurrency, judge_timeout,
    judge_retries.

    ``chosen`` are the tasks the session gates (a judge that scores none of them is a mistake). The judge's
    own checks are its registry entry's ``settings`` (the bundled ones below).
    """
    try:
        spec = parse_spec(text["judge"])
    except KickError as err:
        raise KickError(f"{flag('judge')}: {str(err).split(': ', 1)[-1]}") from None
    judge = judge_entry(spec)
    given = [name for name in OPTIONS if values.get(name) is not None and name not in getattr(judge, "options", ())]
    if given:
        takers = [
            e.form.split(" (")[0] for e in extensions.judges.entries().values() if given[0] in getattr(e, "options", ())
        ]
        article = "an" if takers and takers[0][0] in "aeiou" else "a"
        raise KickError(
            f"{flag(given[0])} applies to {article} {' or '.join(takers)} judge, not {flag('judge')} {text['judge']}"
        )
    found = {
        "judge": text["judge"].strip(),
        "judge_url": None,
        "judge_key_env": None,
        "judge_concurrency": whole_number(flag("judge-concurrency"), text["judge-concurrency"], 1),
        "judge_timeout": seconds(flag("judge-timeout"), text["judge-timeout"]),
        "judge_retries": whole_number(flag("judge-retries"), text["judge-retries"], 0),
    }
    if judge.backend is None:  # the tasks' own scorers
        return found
    found.update(scoring_settings(text, flag, judge))
    if not any(judgeable(t) for t in chosen):
        families = list(
            dict.fromkeys(t.family for t in map(registry_tasks.get, registry_tasks.names()) if judgeable(t))
        ) or ["no registered task"]
        names = " and ".join(filter(None, [", ".join(families[:-1]), families[-1]]))
        raise KickError(
            f"{flag('judge')} scores {names}, and {flag('tasks')} selects "
            f"{'neither' if len(families) == 2 else 'none of them'}"
        )
    settings = getattr(judge, "settings", None)
    if settings:
        found.update(extensions.resolve(settings, f"judge {judge.name}")(values, text, flag, spec.model))
    return found


def scoring_settings(text: dict, flag, judge) -> dict:
    """--kick-judge-scoring (the judge entry's default: probability for local:, text otherwise) and
    --kick-judge-explain (an option only a local: judge takes, checked above)."""
    scoring = choice(flag("judge-scoring"), text["judge-scoring"] or getattr(judge, "scoring", "text"), SCORINGS)
    explain = boolean(flag("judge-explain"), text["judge-explain"])
    if explain and scoring != "probability":
        raise KickError(
            f"{flag('judge-explain')} applies to a local: judge scoring by probability (a judge writing free text "
            f"explains anyway), not {flag('judge')} {text['judge']} with {scoring} scoring"
        )
    return {"judge_scoring": scoring, "judge_explain": explain}


def local_settings(values: dict, text: dict, flag, model: str) -> dict:
    """A ``local:<model>`` judge: the model is one --kick-model could name."""
    try:
        registry.resolve(model)
    except KickError as err:
        raise KickError(f"{flag('judge')} local:{model}: {err}") from None
    return {}


def openai_settings(values: dict, text: dict, flag, model: str) -> dict:
    """An ``openai:<model>`` judge: the openai package, the endpoint, the key's variable (its name only)."""
    if importlib.util.find_spec("openai") is None:
        raise KickError(f"{flag('judge')} {text['judge']} needs the openai package: {INSTALL}")
    url = values.get("judge-url") or os.environ.get("OPENAI_BASE_URL")
    if not url:
        raise KickError(
            f"{flag('judge')} {text['judge']} needs the endpoint: --kick-judge-url URL or $OPENAI_BASE_URL "
            f"(e.g. https://api.openai.com/v1, or your vLLM / llama.cpp server's http://host:8000/v1)"
        )
    where = flag("judge-url") if values.get("judge-url") else "$OPENAI_BASE_URL"
    found = {"judge_url": judge_url(where, url)}
    key_env = values.get("judge-key-env")
    if key_env is not None:
        if not key_env.strip() or not key_env.replace("_", "").isalnum():
            raise KickError(f"{flag('judge-key-env')}: {key_env!r} is not an environment variable name")
        if not os.environ.get(key_env):
            raise KickError(f"{flag('judge-key-env')} {key_env}: the variable is not set (it should hold the API key)")
        found["judge_key_env"] = key_env
    elif "api.openai.com" in found["judge_url"] and not os.environ.get("OPENAI_API_KEY"):
        raise KickError(
            f"{flag('judge')} {text['judge']} at {found['judge_url']} needs an API key: set "
            f"OPENAI_API_KEY, or name another variable with --kick-judge-key-env"
        )
    return found


def judge_url(where: str, url: str) -> str:
    """The API root of a chat-completions URL; credentials in it are refused (reports print the URL)."""
    from pytest_kick.engines.http import normalize_base_url  # lazy: urllib.request + ssl, ~10 ms on every pytest run

    text = url.strip().rstrip("/")
    if text.endswith("/chat/completions"):
        text = text[: -len("/chat/completions")]
    parts = urlsplit(text)
    if parts.username or parts.password or parts.query:
        raise KickError(
            f"{where}: give the URL without user, password or query; the key goes in an environment "
            f"variable (OPENAI_API_KEY, or the one --kick-judge-key-env names)"
        )
    try:
        return normalize_base_url(text)
    except KickError as err:
        raise KickError(f"{where}: {err}") from None
