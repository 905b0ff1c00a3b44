"""Reaching a judge model: an OpenAI-compatible chat-completions endpoint, or any ``chat`` callable.

A backend answers a batch of conversations (each a tuple of (role, content) pairs, the shape of
``GenerationRequest.messages``) with one ``Completion`` each, in order. ``endpoint`` and ``model`` name
it in cache keys and reports (never a key or password).

``OpenAIBackend`` uses the ``openai`` package (``pip install 'pytest-kick[judge]'``) with its own retries
switched off and these instead, per request: HTTP 429 waits what ``Retry-After`` says (capped), HTTP 5xx,
408, 409, timeouts and dropped connections back off exponentially; after ``retries`` retries the request
is a failed ``Completion`` (a judge error for its item, never a score); ``timeout`` and ``retries`` are
``--kick-judge-timeout`` and ``--kick-judge-retries``. 400 and 422 fail the request at
once (the request itself is wrong, e.g. longer than the judge's context). 401, 403 and 404 stop the run
with a ``KickError``: a wrong key, model or URL fails every request alike. An HTTP 200 reply that is not a
chat completion (a proxy's HTML page, a body that is not JSON, another API's JSON, ``choices: []``) is retried
like a 5xx, its error quoting what came back. Requests run concurrently, at most ``concurrency`` at a time.

``CallableBackend`` wraps ``chat(conversations) -> list[str]``: the seam a local judge (a model run by
the project's engine, ``local:<model>``) plugs into.
"""

from __future__ import annotations

import email.utils
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from pytest_kick.errors import KickError
from pytest_kick.judge.cache import public_endpoint

DEFAULT_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
FATAL_STATUS = {401: "the key was refused", 403: "the key may not use this model", 404: "no such model or URL"}
RETRY_STATUS = {408, 409, 429}
MAX_RETRY_AFTER = 120.0

Conversation = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Completion:
    text: str | None  # None when the request failed
    error: str = ""  # why it failed: "HTTP 500 (5 attempts)", "timed out after 30 s (5 attempts)"
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 1


@dataclass
class Traffic:
    """What a backend sent: requests (every attempt, retries included), retries, failed requests, tokens."""

    requests: int = 0
    retries: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


class CallableBackend:
    """A judge reached through ``chat(conversations) -> list[str]`` (one reply per conversation)."""

    def __init__(self, chat: Callable[[list[Conversation]], list[str]], model: str, endpoint: str | None = None):
        self._chat = chat
        self.model = model
        self.endpoint = endpoint or f"local:{model}"
        self.traffic = Traffic()

    def complete(self, conversations: Sequence[Conversation], temperature: float, max_tokens: int) -> list[Completion]:
        if not conversations:
            return []
        replies = list(self._chat([tuple(c) for c in conversations]))
        if len(replies) != len(conversations):
            raise KickError(f"judge {self.endpoint} answered {len(replies)} of {len(conversations)} conversations")
        self.traffic.requests += len(conversations)
        return [Completion(str(r)) for r in replies]


def resolve_key(key_env: str | None, url: str) -> str:
    """The API key from the named environment variable (OPENAI_API_KEY by default).

    OpenAI itself needs one; a self-hosted server (vLLM, llama.cpp) usually does not, and gets a dummy.
    """
    name = key_env or DEFAULT_KEY_ENV
    key = os.environ.get(name, "")
    if key:
        return key
    if "api.openai.com" in url:
        raise KickError(
            f"the judge at {public_endpoint(url)} needs an API key: set {name}"
            + ("" if key_env else " (or name another variable with --kick-judge-key-env)")
        )
    return "unused"


def _retry_after(response) -> float | None:
    """Seconds to wait from a response's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


class NotCompletion(ValueError):
    """An HTTP 200 reply whose body is not a chat completion."""


GLIMPSE = 60  # characters of a reply's body quoted in an error


def read_completion(body: str, content_type: str) -> tuple[str | None, int, int]:
    """(content, prompt tokens, completion tokens) of a chat-completions reply body; content None when the
    first choice has no text (a refusal, a tool call). NotCompletion saying what came back instead when the
    body is not JSON or not shaped as a chat completion (the openai client hands such a body back as a str,
    or as an unchecked object, which fails later as an AttributeError)."""
    flat = " ".join(body.split())
    kind = content_type.split(";")[0].strip() or "no content type"
    seen = f"{kind} body: {repr(flat[:GLIMPSE] + '…') if len(flat) > GLIMPSE else repr(flat)}"
    try:
        reply = json.loads(body)
    except ValueError:
        raise NotCompletion(f"reply is not a chat completion ({seen})") from None
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list):
        raise NotCompletion(f"reply is not a chat completion (no choices; {seen})")
    if not choices:  # a server that answered nothing this time (overloaded, filtered): asked again
        raise NotCompletion(f"reply is not a chat completion (an empty list of choices; {seen})")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(content, (str, type(None))):
        raise NotCompletion(f"reply is not a chat completion (no message text in its first choice; {seen})")
    return content, *_usage(reply)


def _usage(reply: dict) -> tuple[int, int]:
    usage = reply.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    counts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    return tuple(n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0 for n in counts)


class OpenAIBackend:
    """An OpenAI-compatible chat-completions endpoint, through the ``openai`` client."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        key_env: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        try:
            import openai
        except ImportError:
            raise KickError("an openai: judge needs the openai package: pip install 'pytest-kick[judge]'") from None
        if concurrency < 1:
            raise KickError(f"judge concurrency must be at least 1, got {concurrency}")
        url = url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_URL
        self.model = model
        self.endpoint = public_endpoint(url)
        self.key_env = key_env or DEFAULT_KEY_ENV
        self._secret = resolve_key(key_env, url)
        self._openai = openai
        self._client = openai.OpenAI(api_key=self._secret, base_url=url, timeout=timeout, max_retries=0)
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries
        self.backoff, self.max_backoff, self._sleep = backoff, max_backoff, sleep
        self.traffic = Traffic()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, endpoint={self.endpoint!r})"

    def _clean(self, text: str) -> str:
        """Error text fit to show: the key (if the server echoed it) replaced, one line, bounded."""
        text = " ".join(str(text).split())
        if self._secret and self._secret != "unused":
            text = text.replace(self._secret, "***")
        return text[:200]

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.traffic, name, getattr(self.traffic, name) + delta)

    def _one(self, conversation: Conversation, temperature: float, max_tokens: int) -> Completion:
        openai = self._openai
        messages = [{"role": role, "content": content} for role, content in conversation]
        error = ""
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self._count(retries=1)
            self._count(requests=1)
            wait = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
            try:
                raw = self._client.chat.completions.with_raw_response.create(
                    model=self.model, messages=messages, temperature=temperature, max_tokens=max_tokens
                )
                text, tokens_in, tokens_out = read_completion(
                    raw.http_response.text, raw.headers.get("content-type", "")
                )
                self._count(tokens_in=tokens_in, tokens_out=tokens_out)
                if text is None:
                    error = "reply without content"
                    break
                return Completion(text, "", tokens_in, tokens_out, attempt)
            except NotCompletion as err:  # a proxy's HTML page, another API's JSON: asked again, as for a 5xx
                error = self._clean(str(err))
            except openai.APITimeoutError:
                error = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as err:
                error = f"connection failed ({self._clean(type(err.__cause__ or err).__name__)})"
            except openai.APIStatusError as err:
                status = err.status_code
                if status in FATAL_STATUS:
                    raise KickError(
                        f"the judge at {self.endpoint} answered HTTP {status} for model {self.model!r} "
                        f"({FATAL_STATUS[status]}); check --kick-judge, --kick-judge-url and "
                        f"${self.key_env}"
                    ) from None
                error = f"HTTP {status}"
                if status == 429:
                    after = _retry_after(err.response)
                    if after is not None:
                        wait = min(after, MAX_RETRY_AFTER)
                elif status < 500 and status not in RETRY_STATUS:
                    body = err.body if isinstance(err.body, dict) else {}
                    error = f"HTTP {status}: {self._clean(body.get('message') or err.message)}"
                    break  # the request itself is wrong: asking again cannot help
            except openai.APIError as err:  # a malformed response body
                error = f"unreadable response ({self._clean(type(err).__name__)})"
            if attempt <= self.retries:
                self._sleep(wait)
        self._count(failed=1)
        return Completion(None, f"{error} ({attempt} attempt{'s' if attempt > 1 else ''})", attempts=attempt)

    def complete(self, conversations: Sequence[Conversation], temperature: float, max_tokens: int) -> list[Completion]:
        if not conversations:
            return []
        workers = min(self.concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kick-judge") as pool:
            futures = [pool.submit(self._one, c, temperature, max_tokens) for c in conversations]
            return [f.result() for f in futures]
