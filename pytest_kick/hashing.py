"""Content hashes used in cache keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_hash(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_hash(*parts: str) -> str:
    """sha256 (hex) of texts, each part delimited (("ab", "c") and ("a", "bc") differ)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def json_hash(value) -> str:
    """Hash of a JSON-able value, independent of dict order."""
    return text_hash(json.dumps(value, sort_keys=True, separators=(",", ":")))
