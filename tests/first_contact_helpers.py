"""Shared constants and fixtures of the first-contact tests (test_first_contact*.py)."""

import hashlib

import kick_args
import pytest

TINY = kick_args.FACTOID


def hashes(root):
    """sha256 of every file under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def filled_cache(pytester):
    """A cache dir that already holds a baseline and a converted model's files: what a bad run must not touch."""
    cache = pytester.path / ".kick"
    (cache / "baselines" / "tiny-random-llama").mkdir(parents=True)
    (cache / "baselines" / "tiny-random-llama" / "factoid_qa-0123456789abcdef.json").write_text('{"format": 1}')
    (cache / "models" / "m").mkdir(parents=True)
    (cache / "models" / "m" / "model.safetensors").write_bytes(b"\0weights\1")
    before = hashes(cache)
    yield cache
    assert hashes(cache) == before  # nothing added, changed or removed
