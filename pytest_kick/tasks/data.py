"""Finding and reading task data: bundled samples, local copies; deterministic item subsets."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Sequence, TypeVar

from pytest_kick.errors import KickError

T = TypeVar("T")


def bundled_dir() -> Path:
    """The bundled data directory: ``fixtures/`` in a source tree, ``pytest_kick/data`` in a wheel."""
    spec = importlib.util.find_spec("pytest_kick.data")
    if spec is None or not spec.submodule_search_locations:
        raise KickError("the bundled task data (package pytest_kick.data) is not installed; reinstall pytest-kick")
    return Path(list(spec.submodule_search_locations)[0])


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[dict]:
    """Records of a JSON Lines file; a clear KickError naming the file and line when it is malformed."""
    if not path.is_file():
        raise KickError(f"task data file {path} is missing; reinstall pytest-kick or pass --kick-data-dir")
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise KickError(f"{path}:{lineno}: not valid JSON ({err.msg}); restore the file from its source") from None
            missing = [key for key in required if key not in record]
            if missing:
                raise KickError(f"{path}:{lineno}: record lacks {', '.join(missing)}")
            records.append(record)
    if not records:
        raise KickError(f"task data file {path} holds no records")
    return records


def subset(items: Sequence[T], limit: int | None, seed: int, salt: str) -> list[T]:
    """A deterministic sample of ``limit`` items (all when limit is None), kept in their original order."""
    if limit is None or limit >= len(items):
        return list(items)
    rng = random.Random(f"{seed}/{salt}")
    chosen = sorted(rng.sample(range(len(items)), limit))
    return [items[i] for i in chosen]
