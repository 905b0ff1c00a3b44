"""A small JSON-over-HTTP client for OpenAI-compatible servers (stdlib only: urllib).

Transient failures are retried a bounded number of times with exponential backoff: HTTP 5xx, HTTP 429
(waiting what ``Retry-After`` asks, capped), timeouts, refused or dropped connections. Anything else
(another 4xx, a reply that is not JSON) fails at once. Every failure is a KickError that names the
method, the URL, what happened and how many attempts were made, so a run never scores a broken reply.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from pytest_kick.errors import KickError

RETRY_STATUS = {429, 500, 502, 503, 504}
SNIPPET = 200  # characters of a bad reply quoted in an error


def normalize_base_url(url: str) -> str:
    """``http://host:8000``, ``http://host:8000/v1/`` and ``http://host:8000/v1/completions`` all mean the API
    root ``http://host:8000/v1`` (vLLM, TGI and llama.cpp's server all serve the API under /v1)."""
    text = url.strip().rstrip("/")
    for suffix in ("/completions", "/models"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    scheme, _, rest = text.partition("://")
    if scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise KickError(f"{url!r} is not an http(s) URL; give the server's address, e.g. http://localhost:8000/v1")
    if "/" not in rest:  # no path: the OpenAI-compatible API lives under /v1
        text += "/v1"
    return text


@dataclass
class RetryPolicy:
    attempts: int = 5  # tries per request, the first included
    backoff: float = 1.0  # seconds before the second try; doubled for each later one
    max_wait: float = 60.0  # cap of a backoff or a Retry-After

    def wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        return min(self.backoff * 2 ** (attempt - 1), self.max_wait)


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - now() if when is not None else None


class _Transient(Exception):
    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.what, self.retry_after = what, retry_after


class Client:
    def __init__(
        self,
        base_url: str,
        timeout: float = 600.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.api_key = api_key
        self.sleep = sleep
        self.posts = 0  # POST attempts sent, retries included: what a run cost the server
        self._count = threading.Lock()

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def get(self, path: str) -> dict:
        return self._call("GET", self.url(path), None)

    def post(self, path: str, body: dict) -> dict:
        return self._call("POST", self.url(path), json.dumps(body).encode())

    def _counted(self, method: str) -> None:
        if method == "POST":
            with self._count:
                self.posts += 1

    def _call(self, method: str, url: str, data: bytes | None) -> dict:
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            self._counted(method)
            try:
                return self._once(method, url, data)
            except _Transient as err:
                last = err.what
                if attempt < self.retry.attempts:
                    self.sleep(self.retry.wait(attempt, err.retry_after))
        tries = f"{self.retry.attempts} attempt" + ("s" if self.retry.attempts != 1 else "")
        raise KickError(f"{method} {url} failed after {tries}: {last}")

    def _once(self, method: str, url: str, data: bytes | None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                body = reply.read()
        except urllib.error.HTTPError as err:
            detail = _error_detail(_read(err))
            what = f"HTTP {err.code}" + (f": {detail}" if detail else "")
            if err.code in RETRY_STATUS:
                raise _Transient(what, retry_after_seconds(err.headers.get("Retry-After"))) from None
            raise KickError(f"{method} {url}: {what}") from None
        except (TimeoutError, socket.timeout):
            raise _Transient(f"no reply within the timeout of {self.timeout:g} s") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Transient(f"no reply within the timeout of {self.timeout:g} s") from None
            raise _Transient(f"cannot connect ({reason})") from None
        except (http.client.HTTPException, ConnectionError, OSError) as err:
            raise _Transient(f"the connection broke ({type(err).__name__}: {err or 'no reply'})") from None
        try:
            value = json.loads(body)
        except ValueError:
            raise KickError(f"{method} {url}: the reply is not JSON: {_snippet(body)}") from None
        if not isinstance(value, dict):
            raise KickError(f"{method} {url}: the reply is not a JSON object: {_snippet(body)}")
        return value


def _read(err: urllib.error.HTTPError) -> bytes:
    try:
        return err.read()
    except (OSError, http.client.HTTPException):
        return b""


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return repr(text[:SNIPPET] + ("..." if len(text) > SNIPPET else "")) if text else "(empty)"


def _error_detail(body: bytes) -> str:
    """The server's message from an error reply: vLLM ``{"error": {"message": ...}}`` (or, in older
    releases, ``{"object": "error", "message": ...}``), else the start of the body."""
    try:
        value = json.loads(body)
    except ValueError:
        return _snippet(body) if body.strip() else ""
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:SNIPPET]
        if isinstance(error, str):
            return error[:SNIPPET]
        if value.get("message"):
            return str(value["message"])[:SNIPPET]
    return _snippet(body)
