"""The dense-baseline cache: keyed by everything, reused only on an exact key, never destroyed."""

import json

import pytest

from pytest_kick.baseline import BaselineStore, TaskResult
from pytest_kick.errors import KickError
from pytest_kick.hashing import json_hash

KEY = {
    "model": {"name": "m", "sha256": "abc"},
    "task": "factoid_qa",
    "items": json_hash(["a", "b"]),
    "protocol": "strict",
}


def result(scores=(1.0, 0.0)):
    return TaskResult("factoid_qa", "accuracy", ["a", "b"][: len(scores)], list(scores), ["x", "y"][: len(scores)])


def test_computed_once_then_cached(tmp_path):
    store = BaselineStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return result()

    first, status1, path = store.get_or_compute("m", "factoid_qa", KEY, compute)
    second, status2, path2 = store.get_or_compute("m", "factoid_qa", KEY, compute)
    assert (status1, status2) == ("computed", "cached") and len(calls) == 1
    assert path == path2 and second == first
    assert json.loads(path.read_text())["key"] == KEY


@pytest.mark.parametrize(
    "field, value", [("model", {"name": "m", "sha256": "other"}), ("items", "h2"), ("protocol", "kick")]
)
def test_any_key_change_means_a_new_baseline(tmp_path, field, value):
    store = BaselineStore(tmp_path)
    store.get_or_compute("m", "factoid_qa", KEY, result)
    _, status, _ = store.get_or_compute("m", "factoid_qa", {**KEY, field: value}, lambda: result((0.0, 0.0)))
    assert status == "computed"


def test_corrupt_file_is_reported_and_left_alone(tmp_path):
    store = BaselineStore(tmp_path)
    _, _, path = store.get_or_compute("m", "factoid_qa", KEY, result)
    path.write_text("{ truncated")
    with pytest.raises(KickError, match="corrupt dense-baseline cache .*left untouched"):
        store.get_or_compute("m", "factoid_qa", KEY, result)
    assert path.read_text() == "{ truncated"


def test_an_unreadable_file_is_cannot_read_never_delete(tmp_path, monkeypatch):
    """Another user's intact baseline (we run as root here, so the refusal is simulated where the file is read)."""
    from pathlib import Path

    store = BaselineStore(tmp_path)
    _, _, path = store.get_or_compute("m", "factoid_qa", KEY, result)
    real = Path.read_text

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(KickError) as raised:
        store.get_or_compute("m", "factoid_qa", KEY, result)
    message = str(raised.value)
    assert message.startswith(f"cannot read {path} (permission denied") and "dense-baseline cache" in message
    assert "delete" not in message and "corrupt" not in message


def test_no_temporary_files_are_left_behind(tmp_path):
    store = BaselineStore(tmp_path)
    _, _, path = store.get_or_compute("m", "factoid_qa", KEY, result)
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [path.name]


def test_results_for_other_items_than_the_key_are_corrupt(tmp_path):
    store = BaselineStore(tmp_path)
    _, _, path = store.get_or_compute("m", "factoid_qa", KEY, result)
    data = json.loads(path.read_text())
    data["result"]["item_ids"] = ["b", "a"]  # a hand edit that keeps the lengths
    path.write_text(json.dumps(data))
    with pytest.raises(KickError, match="not for the items its key names"):
        store.get_or_compute("m", "factoid_qa", KEY, result)
