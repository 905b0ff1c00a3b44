"""The cache directory: what killed runs leave behind (stale temporaries, conversions killed midway) is cleaned up
and redone; a converted model is read without a lock. Helpers are in test_cache_dir.py."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from test_cache_dir import dead_pid, tree

from pytest_kick import cache_dir


def test_stale_temporaries_of_dead_processes_only_are_removed(tmp_path):
    target = tmp_path / "models" / "m-abc"
    target.parent.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, live, own = (target.with_name(f"m-abc.tmp-{pid}") for pid in (dead_pid(), sleeper.pid, os.getpid()))
        for folder in (dead, live, own):
            folder.mkdir()
            (folder / "model.safetensors").write_bytes(b"half")
        other = target.with_name("m-abcdef.tmp-1")  # another target's temporary: not this one's
        other.mkdir()
        assert cache_dir.stale_temporaries(target) == [dead]
        assert cache_dir.remove_stale(target) == [dead]
        assert not dead.exists() and live.exists() and own.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sweep_leaves_a_temporary_whose_target_is_locked(tmp_path):
    """A live run on another machine sharing the cache holds the target's lock: its pid means nothing here."""
    folder = tmp_path / "baselines" / "m"
    folder.mkdir(parents=True)
    target = folder / "factoid_qa-0123.json"
    temporary = folder / f"{target.name}.tmp-{dead_pid()}"
    temporary.write_text("{half")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        with FileLock({str(target) + ".lock"!r}):
            print("held", flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cache_dir.sweep(tmp_path) == [] and temporary.exists()
    finally:
        holder.kill()
        holder.wait()
    assert cache_dir.sweep(tmp_path) == [temporary] and not temporary.exists()


KILLED_CONVERSION = """
import os, sys, time
from pathlib import Path
from pytest_kick.models import loading
from pytest_kick.models.registry import EMBEDDED

gguf = Path(sys.argv[2])
loading.gguf_path = lambda source, cache_dir: gguf


def convert(path, target, identity):  # the real one's first steps, then "dequantizing" for a long time
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    (tmp / "model.safetensors").write_bytes(b"x" * 1000)
    print("converting", flush=True)
    time.sleep(120)


loading._convert_gguf = convert
loading._load_gguf_package(EMBEDDED["smollm2-135m"], Path(sys.argv[1]), lambda message: None)
"""


def test_conversion_killed_midway_is_cleaned_up_and_redone_on_the_next_run(tmp_path, monkeypatch):
    from pytest_kick.models import loading
    from pytest_kick.models.registry import EMBEDDED

    cache, gguf = tmp_path / "cache", tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    script = tmp_path / "convert.py"
    script.write_text(KILLED_CONVERSION)
    run = subprocess.Popen([sys.executable, str(script), str(cache), str(gguf)], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().strip() == "converting"
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    [left] = (cache / "models").glob("smollm2-135m-*.tmp-*")
    assert left.name.endswith(f".tmp-{run.pid}") and (left / "model.safetensors").is_file()

    converted_by = []

    def convert(path, target, identity):  # the next run converts for real (stand-in: the marker only)
        converted_by.append(os.getpid())
        target.mkdir()
        (target / loading.COMPLETE).write_text("{}")

    monkeypatch.setattr(loading, "gguf_path", lambda source, cache_dir: gguf)
    monkeypatch.setattr(loading, "_convert_gguf", convert)
    monkeypatch.setattr(loading, "_from_dir", lambda *args, **kwargs: (type("M", (), {})(), None))
    _, _, _, notes = loading._load_gguf_package(EMBEDDED["smollm2-135m"], cache, lambda message: None)
    assert converted_by == [os.getpid()]  # the killed run's lock was released with it: no wait
    assert not left.exists()
    assert [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")] == [
        left.name.split(".tmp-")[0]
    ]
    assert notes[0].startswith("converted ")


def test_converted_model_is_read_without_a_lock(tmp_path, monkeypatch):
    """A finished conversion is read as it is: no lock file, no write (a read-only CI cache)."""
    from pytest_kick.hashing import file_hash
    from pytest_kick.models import loading
    from pytest_kick.models.registry import EMBEDDED

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    converted = tmp_path / "cache" / "models" / f"smollm2-135m-{file_hash(gguf)[:16]}-{loading.CONVERSION}"
    converted.mkdir(parents=True)
    (converted / loading.COMPLETE).write_text("{}")
    before = tree(tmp_path / "cache")
    monkeypatch.setattr(loading, "gguf_path", lambda source, cache_dir: gguf)
    monkeypatch.setattr(loading, "_convert_gguf", lambda *args: pytest.fail("converted again"))
    monkeypatch.setattr(loading, "_from_dir", lambda *args, **kwargs: (type("M", (), {})(), None))
    _, _, _, notes = loading._load_gguf_package(EMBEDDED["smollm2-135m"], tmp_path / "cache", lambda m: None)
    assert notes == [f"reused converted weights {converted}"]
    assert tree(tmp_path / "cache") == before
