"""The path of a dense model's answers to its compressed variants' decoding (engines/draft.py).

A dense baseline is usually read from the cache, not generated in this process, so the drafts are kept beside it:
when a dense case evaluates on the local engine, the engine records its greedy answers (token ids, by prompt) and
they are written to ``<cache>/drafts/<model>/<task>-<key>.json``, ``<key>`` the dense baseline's own cache key
(dense.py), so they are exactly the answers of the baseline the variant is gated against. When a compressed case
of the same (model, task) evaluates, they are handed to its engine for that case only, and what drafting did
(acceptance rate, near-ties) is kept per case. Engines without ``drafts`` (served ones) are left alone. Missing
or unreadable drafts only mean plain decoding: they are a speed-up, never a result.

Whether a variant drafts (``--kick-accelerate``, :func:`drafting`): ``on`` always, ``off`` never, ``auto`` (the
default) on a CUDA device only. On a CPU a drafted pass costs about what its columns cost, so a variant that drifts
early from its dense answers loses more to rejected drafts than it saves in passes (benchmarks/drafted_decoding.py
measured 0.84x on SmolLM2 rtn w8 summarization); on a GPU a decode step costs reading the weights, whatever its
width.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from pytest_kick.baseline import safe_name
from pytest_kick.engines.draft import Drafts, Tally
from pytest_kick.files import atomic_write
from pytest_kick.hashing import json_hash

FORMAT = 1


def drafting(mode: str, device) -> bool:
    """Whether a compressed variant on an engine computing on ``device`` decodes drafted, under --kick-accelerate
    ``mode`` (auto, on, off)."""
    return mode == "on" or (mode == "auto" and str(device).startswith("cuda"))


class DraftStore:
    def __init__(self, cache_dir: Path, mode: str = "auto"):
        self.root = Path(cache_dir) / "drafts"
        self.mode = mode  # --kick-accelerate: whether variants decode drafted (dense runs record either way)
        self._memo: dict[str, Drafts | None] = {}  # path -> drafts read or written in this process
        self.records: dict = {}  # case -> its drafting record (draft.Tally.record), for variants that drafted
        self._tallies: dict = {}  # case -> its Tally over every evaluation (a sequential case runs in rounds)

    def path(self, model_name: str, task: str, key: dict) -> Path:
        return self.root / safe_name(model_name) / f"{safe_name(task)}-{json_hash(key)[:16]}.json"

    @contextmanager
    def around(self, case, engine, key: Callable[[], dict]):
        """Hand the engine what the case needs for the duration of its evaluation: a dense case's engine records
        its answers (written afterwards), a compressed case's engine gets the dense answers to draft from."""
        if not hasattr(engine, "drafts") or (not case.is_dense and not drafting(self.mode, engine.device)):
            yield
            return
        path = self.path(case.model_name, case.task, key())
        before = Tally()
        before.add(engine.tally)
        if case.is_dense:
            engine.record = Drafts()
        else:
            engine.drafts = self._read(path)
        try:
            yield
            if case.is_dense and engine.record:
                self._write(path, engine.record)
            elif not case.is_dense and engine.drafts is not None:
                tally = Tally()
                tally.add(engine.tally)
                for name in tally.__dataclass_fields__:
                    setattr(tally, name, getattr(tally, name) - getattr(before, name))
                if tally.rows:
                    total = self._tallies.setdefault(case, Tally())
                    total.add(tally)
                    self.records[case] = total.record()
        finally:
            engine.record = engine.drafts = None

    def _read(self, path: Path) -> Drafts | None:
        if str(path) not in self._memo:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._memo[str(path)] = Drafts(data["drafts"]) if data.get("format") == FORMAT else None
            except (OSError, ValueError, KeyError, TypeError):  # none yet (an older cache), or unreadable
                self._memo[str(path)] = None
        return self._memo[str(path)]

    def _write(self, path: Path, drafts: Drafts) -> None:
        self._memo[str(path)] = drafts
        try:
            atomic_write(path, json.dumps({"format": FORMAT, "drafts": drafts.entries}))
        except OSError:  # a read-only cache: variants in this process still draft from memory
            pass
