"""Dense results stored per item on disk, keyed by everything that changes them.

The key covers the model identity (weight hash or hub revision), task name and version, prompt template
hash, protocol, shots, the exact item ids, data source and content hash, decoding, dtype, device type and
package versions. A stored file is reused only when its key matches; otherwise a new one is computed next
to it. Files are written atomically under a lock, so xdist workers compute each baseline once. A corrupt
file is reported, never deleted or overwritten.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pytest_kick.cache_dir import locked
from pytest_kick.errors import KickError
from pytest_kick.files import atomic_write, cannot_read
from pytest_kick.hashing import json_hash

FORMAT = 1


@dataclass
class TaskResult:
    """Per-item results of one model on one task."""

    task: str
    metric: str
    item_ids: list
    scores: list
    outputs: list

    @property
    def score(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


def read_result(path: Path, header: str, what: str, remedy: str) -> tuple[dict, TaskResult]:
    """(data[header], TaskResult) of a stored result file; a KickError naming the file when it is corrupt.
    The file is never modified or deleted here."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError:  # another user's intact file: never "delete it"
        raise cannot_read(
            path, f"the {what}", "--kick-cache-dir" if "cache" in what else "--kick-baseline-dir"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KickError(
            f"corrupt {what} {path} ({type(err).__name__}: {err}); it was left untouched: inspect it, then {remedy}"
        ) from None
    try:
        stored, result = data[header], TaskResult(**data["result"])
        if len(result.item_ids) != len(result.scores):
            raise ValueError("item ids and scores differ in length")
    except (KeyError, TypeError, ValueError) as err:
        raise KickError(
            f"corrupt {what} {path} ({type(err).__name__}: {err}); it was left untouched: inspect it, then {remedy}"
        ) from None
    return stored, result


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class BaselineStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "baselines"

    def path(self, model: str, task: str, key: dict) -> Path:
        return self.root / safe_name(model) / f"{safe_name(task)}-{json_hash(key)[:16]}.json"

    def get_or_compute(self, model: str, task: str, key: dict, compute: Callable[[], TaskResult]):
        """(TaskResult, "cached" or "computed", path): "computed" only for the one call, among all processes
        sharing the cache, that ran ``compute``. A stored file is read without a lock (files are renamed
        into place whole), so a read-only cache holding every baseline a run needs is used as it is."""
        path = self.path(model, task, key)
        if path.exists():
            return self._read(path, key), "cached", path
        with locked(
            self.root.parent,
            path,
            f"the dense baseline of {task} on {model} (baselines/{path.parent.name}/{path.name})",
        ):
            if path.exists():  # computed by another process while this one waited for the lock
                return self._read(path, key), "cached", path
            result = compute()
            self._write(path, key, result)
            return result, "computed", path

    @staticmethod
    def _read(path: Path, key: dict) -> TaskResult:
        stored_key, result = read_result(path, "key", "dense-baseline cache", "delete it to recompute")
        if "items" in key and json_hash(list(result.item_ids)) != key["items"]:
            raise KickError(
                f"corrupt dense-baseline cache {path}: its results are not for the items its key names; "
                f"it was left untouched: delete it to recompute"
            )
        if stored_key != key:
            raise KickError(
                f"dense-baseline cache {path} was written for other settings (hash collision?); delete it to recompute"
            )
        return result

    @staticmethod
    def _write(path: Path, key: dict, result: TaskResult) -> None:
        atomic_write(path, json.dumps({"format": FORMAT, "key": key, "result": asdict(result)}, indent=1))
