"""Cache file modes: what another user cannot read is said so, not "delete it". Helpers are in test_cache_modes.py."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import test_cache_modes
from test_cache_modes import convert, write_tiny_gguf

from pytest_kick import files
from pytest_kick.files import cannot_read
from pytest_kick.models import loading

umask = test_cache_modes.umask  # the fixture


def test_an_unreadable_converted_file_is_named_and_never_to_be_deleted(tmp_path, monkeypatch, umask):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    convert(gguf, tmp_path / "cache", monkeypatch)
    [weights] = (tmp_path / "cache" / "models").glob("*/model.safetensors")
    weights.chmod(0)
    if os.geteuid() == 0:  # root reads a chmod 000 file: what another user meets, simulated
        real_open = open

        def denied(path, *args, **kwargs):
            if Path(path) == weights:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(files, "open", denied, raising=False)
    monkeypatch.setattr(loading, "_convert_gguf", lambda *args: pytest.fail("converted over another user's files"))
    with pytest.raises(loading.KickError) as raised:
        convert(gguf, tmp_path / "cache", monkeypatch)
    message = str(raised.value)
    assert message.startswith(f"cannot read {weights} (permission denied, owned by ")
    assert "part of the converted smollm2-135m" in message and "delete" not in message
    assert weights.exists()


def test_cannot_read_names_the_path_owner_and_what_to_do(tmp_path):
    path = tmp_path / "baselines" / "m" / "factoid_qa-0123.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    message = str(cannot_read(path, "the dense baseline of factoid_qa on m"))
    assert message.startswith(f"cannot read {path} (permission denied, owned by ")
    assert "part of the dense baseline of factoid_qa on m; it was left untouched" in message
    assert "chmod -R a+rX" in message and "--kick-cache-dir of your own" in message and "delete" not in message


SECOND_USER = """
import sys
from pathlib import Path
from pytest_kick.errors import KickError
from pytest_kick.models import loading
from pytest_kick.models.registry import EMBEDDED

gguf = Path(sys.argv[2])
loading.gguf_path = lambda source, cache_dir: gguf
loading._convert_gguf = lambda *args: sys.exit("converted again")
try:
    print(loading.load(EMBEDDED["smollm2-135m"], Path(sys.argv[1]), "cpu", "float32").notes[0])
except KickError as err:
    print("KickError:", err)
"""


def as_another_user(script: Path, *args) -> str:
    """Run ``script`` as uid 65534 (nobody), to whom permissions apply as to any user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    env = {
        **os.environ,
        "HOME": str(script.parent),
        "HF_HOME": str(script.parent / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, str(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_another_user_reads_a_conversion_and_is_told_what_it_may_not_read(monkeypatch, umask):
    base = Path(tempfile.mkdtemp(prefix="kick-shared-"))  # under /tmp: reachable by the other user
    try:
        base.chmod(0o755)
        gguf = write_tiny_gguf(base / "tiny.gguf")
        convert(gguf, base / "cache", monkeypatch)
        script = base / "second_user.py"
        script.write_text(SECOND_USER)
        assert as_another_user(script, base / "cache", gguf).startswith("reused converted weights")
        [weights] = (base / "cache" / "models").glob("*/model.safetensors")
        weights.chmod(0o600)  # what every conversion was before: readable by its converter only
        said = as_another_user(script, base / "cache", gguf)
        assert said.startswith(f"KickError: cannot read {weights} (permission denied, owned by root)"), said
        assert "delete" not in said
    finally:
        shutil.rmtree(base, ignore_errors=True)
