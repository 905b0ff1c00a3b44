"""Writing files so that a reader (another xdist worker, a crashed run, another user) never sees half of one,
and can read what was written.

Everything pytest-kick writes into a cache gets the mode an ordinary file gets under the process's umask:
0666 & ~umask for files, 0777 & ~umask for directories (0644 / 0755 under the usual umask 022, 0664 / 0775
under a group's 002). Some writers do otherwise on their own — safetensors' ``save_file`` and
``tempfile.mkstemp`` create 0600 files, ``tempfile.mkdtemp`` 0700 directories — which leaves a shared or
read-only cache unreadable to every other user; ``ordinary_mode`` puts such a file back in line before it
is renamed into place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pytest_kick.errors import KickError


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), since setting it to
    read it would briefly give files other threads create a wrong mode."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_mode(path: Path | str) -> None:
    """Give ``path`` (a file, or a directory and everything in it) the mode an ordinary file or directory
    gets under the umask. Only entries this process's user owns are changed (another user's are theirs)."""
    path = Path(path)
    mask = current_umask()
    entries = [path]
    if path.is_dir() and not path.is_symlink():
        entries += sorted(path.rglob("*"))
    for entry in entries:
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode) or (hasattr(os, "geteuid") and info.st_uid != os.geteuid()):
            continue
        wanted = (0o777 if stat.S_ISDIR(info.st_mode) else 0o666) & ~mask
        if stat.S_IMODE(info.st_mode) != wanted:
            os.chmod(entry, wanted)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``. The file gets the
    ordinary mode (0666 & ~umask), as ``open`` gives a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    ordinary_mode(tmp)  # a temporary left by a killed run of this pid may have had another mode
    os.replace(tmp, path)


def first_unreadable(path: Path | str) -> Path | None:
    """The first file or directory under ``path`` (``path`` included) this process may not read, or None.
    Opening is the test (``os.access`` says yes to root even where a read-only mount or ACL says no)."""
    path = Path(path)
    try:
        if not path.is_dir():
            with open(path, "rb"):
                return None
        children = sorted(path.iterdir())
    except PermissionError:
        return path
    except OSError:
        return None  # gone, or another failure: whoever reads it next says what
    for child in children:
        found = first_unreadable(child)
        if found is not None:
            return found
    return None


def cannot_read(path: Path | str, what: str, option: str = "--kick-cache-dir") -> KickError:
    """The message for a cache entry this user may not read: the entry is intact and another user's (or was
    written with a narrow mode), so it must not be deleted to rebuild it."""
    path = Path(path)
    owner = ""
    try:
        uid = path.stat().st_uid
        try:
            import pwd

            owner = f", owned by {pwd.getpwuid(uid).pw_name}"
        except (ImportError, KeyError):
            owner = f", owned by uid {uid}"
    except OSError:
        pass
    return KickError(
        f"cannot read {path} (permission denied{owner}), part of {what}; it was left untouched: ask its "
        f"owner to make it readable (chmod -R a+rX), or give a {option} of your own"
    )
