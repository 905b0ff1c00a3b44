"""Dense baselines as files a team commits and reviews: ``--kick-baseline-dir DIR`` keeps
``DIR/<model>/<task>.json`` with the per-item dense results and an *envelope* saying how they were made.

Unlike the cache (which recomputes whenever anything changes), a committed baseline is the reference:
it is reused across machines, and differences in how it was made are reported, not silently fixed.

- Fields that decide *which items were asked, how* (task, version, prompt template, protocol, shots,
  items) must match, or the paired comparison is meaningless: a mismatch is an error naming the fields
  and suggesting --kick-regen.
- Fields that describe *the environment* (model weights, dtype, device, batch size, data file, package
  versions) may differ between a laptop and CI: a mismatch warns, naming each field and both values;
  with --kick-strict-env it is an error.

A missing file is computed and written; --kick-regen recomputes and rewrites (once per run, also across
xdist workers). Writes are atomic; a corrupt file is an error naming it; nothing is deleted.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from pytest_kick.baseline import TaskResult, read_result, safe_name
from pytest_kick.cache_dir import locked
from pytest_kick.errors import KickError
from pytest_kick.files import atomic_write
from pytest_kick.hashing import json_hash

FORMAT = 1
PAIRING_FIELDS = ("task", "task_version", "template", "protocol", "shots", "items", "n")


def differences(stored: dict, current: dict) -> dict:
    """{field: (stored value, current value)} for every top-level field that differs."""
    return {
        k: (stored.get(k), current.get(k))
        for k in sorted(set(stored) | set(current))
        if stored.get(k) != current.get(k)
    }


def describe(diff: dict) -> str:
    def short(value):
        text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
        return text if len(text) <= 60 else text[:57] + "..."

    return "; ".join(f"{field}: stored {short(a)} vs now {short(b)}" for field, (a, b) in diff.items())


class BaselineFiles:
    def __init__(self, root: Path, run_id: str, regen: bool = False, strict_env: bool = False):
        self.root = Path(root)
        self.run_id = run_id
        self.regen = regen
        self.strict_env = strict_env

    def path(self, model: str, task: str) -> Path:
        return self.root / safe_name(model) / f"{safe_name(task)}.json"

    def get_or_compute(
        self, model: str, task: str, envelope: dict, compute: Callable[[], TaskResult], warn: Callable[[str], None]
    ):
        """(TaskResult, status, path); status is "file" (read), "written" (was missing) or "regenerated"."""
        path = self.path(model, task)
        if path.exists() and not self.regen:  # read without a lock: a checked-out, read-only tree works
            return self._read(path, envelope, warn), "file", path
        with locked(self.root, path, f"the baseline file {safe_name(model)}/{path.name}", "--kick-baseline-dir"):
            if not path.exists():
                return self._write(path, envelope, compute()), "written", path
            if self.regen and self._run_id(path) != self.run_id:  # not yet regenerated in this run
                return self._write(path, envelope, compute()), "regenerated", path
            return self._read(path, envelope, warn), "file", path

    def _read(self, path: Path, envelope: dict, warn: Callable[[str], None]) -> TaskResult:
        stored, result = read_result(
            path, "envelope", "baseline file", "restore it from version control or rerun with --kick-regen"
        )
        if json_hash(list(result.item_ids)) != stored.get("items"):
            raise KickError(
                f"corrupt baseline file {path}: its results are not for the items its envelope "
                f"names (edited by hand or a bad merge?); restore it or rerun with --kick-regen"
            )
        self._check(path, stored, envelope, warn)
        return result

    @staticmethod
    def _run_id(path: Path) -> str | None:
        """The run that wrote the file; None when unreadable (so --kick-regen can replace a corrupt file)."""
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("run_id")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            return None

    def _write(self, path: Path, envelope: dict, result: TaskResult) -> TaskResult:
        body = {"format": FORMAT, "envelope": envelope, "run_id": self.run_id, "result": asdict(result)}
        atomic_write(path, json.dumps(body, indent=1, sort_keys=True))
        return result

    def _check(self, path: Path, stored: dict, current: dict, warn: Callable[[str], None]) -> None:
        diff = differences(stored, current)
        pairing = {k: v for k, v in diff.items() if k in PAIRING_FIELDS}
        if pairing:
            raise KickError(
                f"baseline file {path} was made for other items or prompts ({describe(pairing)}); "
                f"the comparison would not be paired: rerun with --kick-regen to rewrite it"
            )
        if diff:
            message = f"baseline file {path} was made in another environment: {describe(diff)}"
            if self.strict_env:
                raise KickError(message + " (--kick-strict-env)")
            warn(message)
