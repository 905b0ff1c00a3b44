"""Recovery options and data: what a user types, and the text recovery trains on."""

import json

import pytest

from pytest_kick.errors import KickError
from pytest_kick.recover import RecoverySpec, parse_methods, parse_sizes
from pytest_kick.recover.data import load_corpus, windows


def test_methods_parse_in_order_without_repeats():
    assert parse_methods("none,prompt,idp,lora") == [None, "prompt", "idp", "lora"]
    assert parse_methods(" lora , none,lora") == ["lora", None]


@pytest.mark.parametrize(
    "text, message",
    [
        ("prompt,adapter", "unknown method 'adapter'"),
        (" , ", "at least one"),
    ],
)
def test_bad_methods_are_named(text, message):
    with pytest.raises(KickError, match=message):
        parse_methods(text)


def test_sizes_parse_per_method():
    assert parse_sizes("prompt.tokens=40, lora.rank=4,lora.targets=q_proj+k_proj,idp.prompts=8") == {
        "prompt": {"tokens": 40},
        "lora": {"rank": 4, "targets": "q_proj,k_proj"},
        "idp": {"prompts": 8},
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("prompt.rank=4", "cannot read 'prompt.rank=4'"),
        ("lora.rank=four", "lora.rank must be an integer"),
        ("tokens=4", "cannot read"),
    ],
)
def test_bad_sizes_are_named(text, message):
    with pytest.raises(KickError, match=message):
        parse_sizes(text)


def test_spec_defaults_and_validation():
    spec = RecoverySpec("idp")
    assert spec.size == {"prompts": 4, "tokens": 5}
    assert RecoverySpec("prompt").size["tokens"] == 4 * 5  # prompt and idp train as many parameters
    assert spec.learning_rate > RecoverySpec("lora").learning_rate
    assert RecoverySpec("lora", lr=0.5).key()["lr"] == 0.5
    with pytest.raises(KickError, match="no size setting rank"):
        RecoverySpec("prompt", sizes={"rank": 2})
    with pytest.raises(KickError, match="steps must be a positive integer"):
        RecoverySpec("lora", steps=0)
    with pytest.raises(KickError, match="learning rate must be positive"):
        RecoverySpec("lora", lr=-1.0)
    with pytest.raises(KickError, match="tokens must be a positive integer"):
        RecoverySpec("prompt", sizes={"tokens": 0})


def test_held_out_documents_are_never_trained_on():
    corpus = load_corpus()
    assert corpus.source.startswith("bundled:c4/")
    assert not set(corpus.train) & set(corpus.held_out)
    assert 0.05 < len(corpus.held_out) / (len(corpus.train) + len(corpus.held_out)) < 0.15


def test_user_data_directory(tmp_path, tiny):
    docs = [{"text": f"document number {i} " * 20} for i in range(40)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    corpus = load_corpus(tmp_path)
    assert corpus.source == f"local:{tmp_path / 'a.jsonl'}"
    assert len(corpus.train) + len(corpus.held_out) == 40 and corpus.held_out
    _, tokenizer = tiny
    ids = windows(tokenizer, corpus.train, 5, 32, seed=0)
    assert ids.shape == (5, 32)
    assert ids.tolist() == windows(tokenizer, corpus.train, 5, 32, seed=0).tolist()
    assert ids.tolist() != windows(tokenizer, corpus.train, 5, 32, seed=1).tolist()


@pytest.mark.parametrize(
    "layout, message",
    [
        (None, "is not a directory"),
        ({}, "holds no \\*.jsonl files"),
        ({"a.jsonl": '{"txt": "x"}'}, "lacks text"),
        ({"a.jsonl": '{"text": "only one document"}'}, "at least 10 are needed"),
    ],
)
def test_bad_user_data_is_named(tmp_path, layout, message):
    directory = tmp_path / "data"
    if layout is not None:
        directory.mkdir()
        for name, text in layout.items():
            (directory / name).write_text(text)
    with pytest.raises(KickError, match=message):
        load_corpus(directory)


def test_windows_start_as_evaluated_prompts_do():
    """A tokenizer that puts BOS before text gets it at the start of every window."""

    class BosTokenizer:
        def __call__(self, text, add_special_tokens=True):
            ids = [ord(c) % 50 + 2 for c in text]
            return {"input_ids": ([1] if add_special_tokens else []) + ids}

    ids = windows(BosTokenizer(), ["x" * 100, "y" * 100], 4, 16, seed=0)
    assert ids[:, 0].tolist() == [1, 1, 1, 1] and (ids[:, 1:] != 1).all()
