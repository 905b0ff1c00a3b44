"""--kick-cache-dir: checked once at session start, used as it is when read-only, and cleared of what
killed runs left behind (only theirs, never a live run's).

Read-only caches are tested for real: tests run as root here, and root writes through ``chmod a-w``, so
the runs that must meet a read-only cache are started through ``capsh`` without the capabilities that
let root ignore permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER). As any other user,
``chmod`` alone does it.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_kick import cache_dir
from pytest_kick.errors import KickError

TINY = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "6",
    "--kick-tasks",
    "factoid_qa",
    "--kick-compressor",
    "magnitude",
    "--kick-ratio",
    "0.5",
    "-p",
    "no:cacheprovider",
]


def tree(root: Path) -> dict:
    """{relative path: sha256 (files) or "dir"} of everything under root: what a run may not change."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def dead_pid() -> int:
    """The id of a process that has exited (ids are not reused this quickly)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def unprivileged(command: list[str]) -> list[str]:
    """``command`` so that file permissions bind it, as they bind a user (and a read-only mount binds root)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("capsh") is None:
        pytest.skip("running as root without capsh: cannot drop the capabilities that ignore chmod")
    return [
        "capsh",
        "--drop=cap_dac_override,cap_dac_read_search,cap_fowner",
        "--",
        "-c",
        " ".join(f"'{part}'" for part in command),
    ]


def run_pytest(where: Path, *args, read_only=False):
    command = [sys.executable, "-m", "pytest", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTEST_ADDOPTS": ""}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        unprivileged(command) if read_only else command, cwd=where, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_file_is_not_a_cache_dir(tmp_path):
    target = tmp_path / "cache"
    target.write_text("notes")
    with pytest.raises(KickError, match=f"--kick-cache-dir {target} is a file, not a directory"):
        cache_dir.prepare(target)
    with pytest.raises(KickError, match=f"--kick-cache-dir {target / 'sub'} cannot be created"):
        cache_dir.prepare(target / "sub")
    assert target.read_text() == "notes"


def test_a_missing_cache_dir_is_created(tmp_path):
    assert cache_dir.prepare(tmp_path / "a" / "b") is True
    assert (tmp_path / "a" / "b").is_dir()


def test_cache_dir_that_is_a_file_is_one_usage_error_at_session_start(pytester):
    (pytester.path / "cache").write_text("notes")
    result = run_pytest(pytester.path, *TINY, "--kick-cache-dir", "cache")
    assert result.returncode == 4, result.stdout + result.stderr
    message = f"--kick-cache-dir {pytester.path / 'cache'} is a file, not a directory"
    assert (result.stdout + result.stderr).count(message) == 1
    assert "cannot load" not in result.stdout + result.stderr
    assert (pytester.path / "cache").read_text() == "notes"


def test_read_only_cache_holding_everything_is_used_as_it_is(pytester):
    first = run_pytest(pytester.path, *TINY, "--kick-cache-dir", "ci-cache")
    assert first.returncode == 0, first.stdout[-3000:]
    cache = pytester.path / "ci-cache"
    assert list((cache / "baselines").rglob("*.json"))
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = tree(cache)
    try:
        second = run_pytest(pytester.path, *TINY, "--kick-cache-dir", "ci-cache", "-rs", read_only=True)
    finally:
        for path in [cache, *cache.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert "is read-only: using what it holds" in out
    assert "dense baseline: cached" in out
    assert tree(cache) == before  # no lock file, no temporary, nothing rewritten


def test_read_only_cache_missing_a_baseline_names_the_directory(pytester):
    cache = pytester.path / "empty-cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        result = run_pytest(pytester.path, *TINY, "--kick-cache-dir", "empty-cache", read_only=True)
    finally:
        cache.chmod(0o755)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]  # a session error: every item would meet it
    assert (
        out.count(
            f"--kick-cache-dir {cache} is read-only (Permission denied) and does not hold the dense "
            f"baseline of factoid_qa on tiny-random-llama"
        )
        == 1
    ), out[-3000:]
    assert "cannot load" not in out and "Traceback" not in out
    assert list(cache.iterdir()) == []


def test_read_only_detection():
    """os.access-based, so it follows a read-only mount as well as permissions."""
    probe = subprocess.run(
        unprivileged(
            [
                sys.executable,
                "-c",
                textwrap.dedent("""
        import os, tempfile
        from pytest_kick import cache_dir
        root = tempfile.mkdtemp()
        os.chmod(root, 0o555)
        print(cache_dir.prepare(root), cache_dir.writable(root))
        os.chmod(root, 0o755)
        print(cache_dir.prepare(root))
        os.rmdir(root)
    """),
            ]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.split() == ["False", "False", "True"], probe.stderr
