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
                raise KickError(
                    f"{path}:{lineno}: not valid JSON ({err.msg}); restore the file from its source"
                ) from None
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


def split_shots(
    examples: Sequence[T], settings, salt: str, what: str = "the data", first: bool = False
) -> tuple[list[T], list[T]]:
    """(shots, evaluated items): ``settings.shots`` seeded in-context examples, and the deterministic
    ``settings.limit`` subset of the rest (with ``first``: the first ``limit`` of the rest, in order, as
    LLM-KICK takes items). ``salt`` (a task or family name) makes the draw task-specific."""
    examples = list(examples)
    if settings.shots >= len(examples):
        raise KickError(f"--kick-shots {settings.shots}: {what} has only {len(examples)} questions")
    rng = random.Random(f"{settings.seed}/{salt}/shots")
    chosen = set(rng.sample(range(len(examples)), settings.shots))
    shots = [examples[i] for i in sorted(chosen)]
    pool = [e for i, e in enumerate(examples) if i not in chosen]
    if first:
        return shots, pool if settings.limit is None else pool[: settings.limit]
    return shots, subset(pool, settings.limit, settings.seed, salt)


def hub_rows(path: str, name: str | None, split: str, notify=None, **options) -> tuple[list[dict], str, str] | None:
    """(rows, source, digest) of a Hugging Face hub dataset split, or None when the hub is out of reach.

    Out of reach: HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1, the ``datasets`` package missing, or the hub's
    host not answering within a few seconds. The source names the dataset, config, split and revision
    fingerprint, so a baseline computed on hub data never pairs with one computed on a bundled sample.
    """
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=3).close()
    except OSError:
        return None
    try:
        import datasets
    except ImportError:
        return None
    if notify:
        notify(f"loading {path}{'/' + name if name else ''} {split} from the Hugging Face hub")
    try:
        loaded = datasets.load_dataset(path, name, split=split, **options)
    except Exception as err:  # the hub answered but the dataset did not load: say so, fall back
        if notify:
            notify(f"hub dataset {path} unavailable ({type(err).__name__}); using local or bundled data")
        return None
    fingerprint = getattr(loaded, "_fingerprint", "unknown")
    return [dict(row) for row in loaded], f"hub:{path}/{name or '-'}@{split}", str(fingerprint)
