"""Judge replies on disk: a rerun with the same answers asks the judge nothing.

One JSON file per reply under ``<cache dir>/judge/<2 hex>/<sha256>.json``, keyed by everything that
changes the reply: the endpoint (without credentials), the judge model, the full messages, the decoding
settings and the ask number (a reply that could not be read is asked again as ask 1, 2, ...: each is
its own entry). Only replies are stored — no key, no headers — and only replies that were read (runner.py):
an unreadable reply or a failed request is never cached, so a rerun asks the judge again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pytest_kick.files import ordinary_mode
from pytest_kick.hashing import json_hash

VERSION = 1


def public_endpoint(url: str) -> str:
    """The endpoint as it may be stored: no user:password@, no query string, no trailing slash."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class Reply:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0


def cache_key(endpoint: str, model: str, messages, temperature: float, max_tokens: int, ask: int) -> str:
    return json_hash(
        {
            "v": VERSION,
            "endpoint": endpoint,
            "model": model,
            "messages": [list(m) for m in messages],
            "temperature": float(temperature),
            "max_tokens": int(max_tokens),
            "ask": int(ask),
        }
    )


class ReplyCache:
    def __init__(self, root: Path | str | None):
        self.root = Path(root) / "judge" if root is not None else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Reply | None:
        if self.root is None:
            return None
        try:
            record = json.loads(self._path(key).read_text(encoding="utf-8"))
            return Reply(str(record["text"]), int(record.get("tokens_in", 0)), int(record.get("tokens_out", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: asked again, and rewritten

    def put(self, key: str, reply: Reply) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"text": reply.text, "tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out}
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(record, out)
            ordinary_mode(tmp)  # mkstemp makes it 0600: every user of a shared cache reads it
            os.replace(tmp, path)  # atomic: parallel workers never see half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
