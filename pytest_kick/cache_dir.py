"""The cache directory (``--kick-cache-dir``): checked once at session start, and the temporaries of
killed runs removed.

- A path that is a file, or lies under one, or cannot be created, is a usage error naming the directory,
  before any model is loaded.
- A read-only cache (a CI cache mounted read-only) is used as it is: whatever it already holds (converted
  models, dense baselines) is read without a lock or any other write. Only something missing from it
  fails, naming the directory and what is missing (``read_only_error``).
- Writers (model conversion, baseline files) write to ``<target>.tmp-<pid>`` and rename. A run killed
  midway leaves that temporary behind; ``remove_stale`` deletes it on a later run, and only when the pid
  is no process on this machine, and only while the caller holds the target's lock, so a temporary
  another live run is still writing is never touched.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from pytest_kick.errors import KickError, KickSessionError

TMP = re.compile(r"\.tmp-(\d+)$")


def prepare(path: Path) -> bool:
    """Check ``path`` can serve as the cache, creating it when missing. True when writable, False when it
    is read-only (usable for what it already holds). KickError naming the directory otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KickError(
            f"--kick-cache-dir {path} is a file, not a directory; give a directory (it is created "
            f"when missing) or move the file away"
        )
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise KickError(
                f"--kick-cache-dir {path} cannot be created ({err.strerror or err}); give a directory you can write to"
            ) from None
    if not writable(path):
        return False
    sweep(path)
    return True


def writable(path: Path) -> bool:
    """Whether files can be created in ``path`` (False on a read-only mount, or without write permission)."""
    return os.access(path, os.W_OK | os.X_OK)


def read_only_error(root: Path, missing: str, err: OSError, option: str = "--kick-cache-dir") -> KickError:
    """The message for a write a read-only (or otherwise unwritable) directory refused. A read-only cache that
    lacks what the run needs dooms the session: one message (KickSessionError), not one per item."""
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return KickSessionError(
            f"{option} {root} is read-only ({err.strerror}) and does not hold {missing}; "
            f"make it writable, or fill it once in a run with a writable copy"
        )
    return KickError(f"{option} {root}: cannot write {missing} ({err.strerror or err})")


@contextmanager
def locked(root: Path, target: Path, missing: str, option: str = "--kick-cache-dir"):
    """Hold ``target``'s lock to write it (creating its folder), with stale temporaries of ``target``
    removed first. A cache that refuses the folder or the lock file raises ``read_only_error`` naming
    ``missing``, before anything is computed."""
    from filelock import FileLock

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not writable(target.parent):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target.parent))
        lock = FileLock(str(target) + ".lock")
        lock.acquire()
    except OSError as err:
        raise read_only_error(root, missing, err, option) from None
    try:
        remove_stale(target)
        yield
    finally:
        lock.release()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def stale_temporaries(target: Path) -> list[Path]:
    """Temporaries ``<target>.tmp-<pid>`` beside ``target`` whose writing process is gone."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    found = []
    for entry in target.parent.iterdir():
        if not entry.name.startswith(target.name + ".tmp-"):
            continue
        match = TMP.search(entry.name)
        if match and entry.name == f"{target.name}.tmp-{match.group(1)}" and not pid_alive(int(match.group(1))):
            found.append(entry)
    return sorted(found)


def sweep(root: Path) -> list[Path]:
    """Remove every stale temporary in the cache (converted models, dense baselines), each only when its
    target's lock is free at once: a run still writing holds that lock."""
    from filelock import FileLock, Timeout

    root = Path(root)
    removed = []
    for folder in [root / "models", *sorted((root / "baselines").glob("*/"))]:
        if not folder.is_dir():
            continue
        targets = {folder / TMP.sub("", entry.name) for entry in folder.iterdir() if TMP.search(entry.name)}
        for target in sorted(targets):
            if not stale_temporaries(target):
                continue
            try:
                with FileLock(str(target) + ".lock", timeout=0):
                    removed += remove_stale(target)
            except (Timeout, OSError):
                continue  # being written right now, or not ours to touch: left for a later run
    return removed


def remove_stale(target: Path) -> list[Path]:
    """Delete the temporaries of ``target`` left by killed runs; the caller holds ``target``'s lock."""
    removed = stale_temporaries(target)
    for entry in removed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return removed
