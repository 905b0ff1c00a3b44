"""Trained recovery parameters on disk, keyed by everything that changes them.

``<cache dir>/recovery/<method>-<key hash>/`` holds ``params.safetensors`` and ``meta.json`` (the full key,
training seconds, losses); ``meta.json`` is written last, so its presence means the entry is whole. A file
lock around look-up, training and saving makes a second process (an xdist worker) wait for the first and
then read its result instead of training again.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.files import atomic_write, cannot_read, first_unreadable, ordinary_mode
from pytest_kick.hashing import json_hash


def entry_dir(cache_dir: Path, method: str, key: dict) -> Path:
    return Path(cache_dir) / "recovery" / f"{method}-{json_hash(key)[:20]}"


@contextmanager
def locked(directory: Path):
    from filelock import FileLock

    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        yield


def load(directory: Path, key: dict) -> tuple[dict, dict] | None:
    """(parameters on CPU, meta) of a whole entry made under ``key``, else None."""
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        return None
    for part in (meta_path, directory / "params.safetensors"):  # another user's entry, intact: never "delete it"
        if first_unreadable(part) is not None:  # (safetensors says "No such file" of a file it may not read)
            raise cannot_read(part, f"the recovery cache entry {directory}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise KickError(f"recovery cache entry {meta_path} is unreadable ({err}); delete {directory}") from None
    if meta.get("key") != json.loads(json.dumps(key)):
        return None  # a hash collision on the prefix, or an entry from another key layout: retrain
    from safetensors.torch import load_file

    try:
        params = load_file(str(directory / "params.safetensors"))
    except Exception as err:  # a truncated or foreign file
        raise KickError(f"recovery cache entry {directory} is corrupt ({err}); delete it to retrain") from None
    return params, meta


def save(directory: Path, key: dict, params: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"params.safetensors.tmp-{os.getpid()}"
    save_file({k: v.detach().to("cpu").contiguous() for k, v in params.items()}, str(tmp))
    ordinary_mode(tmp)  # save_file writes 0600: every user of a shared cache reads it
    os.replace(tmp, directory / "params.safetensors")
    atomic_write(directory / "meta.json", json.dumps({**meta, "key": key}, indent=1, sort_keys=True))
