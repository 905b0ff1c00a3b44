"""Trained recovery parameters are cached by everything that changes them; a rerun does not retrain."""

import json

import pytest
import torch

from pytest_kick.errors import KickError
from pytest_kick.models.tiny import tiny_random_llama
from pytest_kick.recover import RecoverySpec, recover, train
from pytest_kick.recover.data import load_corpus

KEY = {"model": {"name": "tiny-random-llama", "seed": 0}, "compressor": "magnitude", "ratio": "0.5"}


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture
def tiny_model():
    model, tokenizer, _ = tiny_random_llama(seed=0)
    return model.eval(), tokenizer


def no_training(*args, **kwargs):
    raise AssertionError("trained although the cache holds this recovery")


@pytest.mark.parametrize("method", ["prompt", "lora"])
def test_rerun_loads_instead_of_training(tiny_model, corpus, tmp_path, monkeypatch, method, one_thread):
    model, tokenizer = tiny_model
    spec = RecoverySpec(method, steps=3, seqlen=32)
    first = recover(model, tokenizer, spec, corpus, cache_dir=tmp_path, key=KEY)
    assert not first.cached
    monkeypatch.setattr(train, "train", no_training)
    again = recover(model, tokenizer, spec, corpus, cache_dir=tmp_path, key=KEY)
    assert again.cached
    assert again.params.keys() == first.params.keys()
    assert all(torch.equal(again.params[k].cpu(), first.params[k].cpu()) for k in first.params)
    assert again.training_seconds == first.training_seconds and again.losses == first.losses
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.inference_mode():
        with first.applied(model):
            a = model(input_ids=ids).logits
        with again.applied(model):
            b = model(input_ids=ids).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("change", ["steps", "lr", "seed", "size", "variant", "weights"])
def test_anything_that_changes_training_misses_the_cache(tiny_model, corpus, tmp_path, change, one_thread):
    model, tokenizer = tiny_model
    spec = RecoverySpec("prompt", steps=2, seqlen=32)
    recover(model, tokenizer, spec, corpus, cache_dir=tmp_path, key=KEY)
    key = KEY
    if change == "steps":
        spec = RecoverySpec("prompt", steps=3, seqlen=32)
    elif change == "lr":
        spec = RecoverySpec("prompt", steps=2, seqlen=32, lr=0.01)
    elif change == "seed":
        spec = RecoverySpec("prompt", steps=2, seqlen=32, seed=1)
    elif change == "size":
        spec = spec.with_size(tokens=4)
    elif change == "variant":
        key = {**KEY, "ratio": "0.3"}
    else:  # the compressed weights themselves, under an unchanged caller key
        with torch.no_grad():
            model.get_decoder().layers[0].mlp.down_proj.weight.mul_(0.5)
    assert not recover(model, tokenizer, spec, corpus, cache_dir=tmp_path, key=key).cached


def test_a_corrupt_entry_says_what_to_do(tiny_model, corpus, tmp_path, one_thread):
    model, tokenizer = tiny_model
    spec = RecoverySpec("prompt", steps=1, seqlen=32)
    recover(model, tokenizer, spec, corpus, cache_dir=tmp_path, key=KEY)
    (params,) = (tmp_path / "recovery").glob("prompt-*/params.safetensors")
    params.write_bytes(b"not a safetensors file")
    with pytest.raises(KickError, match="corrupt.*delete it to retrain"):
        recover(model, tokenizer, spec, corpus, cache_dir=tmp_path, key=KEY)


def test_meta_records_the_training(tiny_model, corpus, tmp_path, one_thread):
    model, tokenizer = tiny_model
    recovery = recover(model, tokenizer, RecoverySpec("idp", steps=2, seqlen=32), corpus, cache_dir=tmp_path, key=KEY)
    (meta,) = (tmp_path / "recovery").glob("idp-*/meta.json")
    record = json.loads(meta.read_text())
    assert record["key"]["recovery"]["method"] == "idp"
    assert record["key"]["variant"] == KEY
    assert record["parameters"] == recovery.extra_parameters
    assert len(record["losses"]) == 2 and sum(record["usage"]) == 2 * 4
