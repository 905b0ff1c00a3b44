"""Magnitude pruning: exact sparsity per matrix, only decoder-block linears touched, exact restore."""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.compress import get, names
from pytest_kick.compress.base import DenseBackup, compressible_linears
from pytest_kick.compress.magnitude import prune_matrix
from pytest_kick.errors import KickError
from pytest_kick.models.tiny import tiny_random_llama


@pytest.fixture
def fresh():
    model, _, _ = tiny_random_llama(seed=1)
    return model


def test_registry_knows_magnitude():
    assert "magnitude" in names()
    assert callable(get("magnitude"))


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), ratio=st.floats(0, 0.99), seed=st.integers(0, 1000))
def test_prune_matrix_reaches_the_asked_count_and_keeps_the_largest(rows, cols, ratio, seed):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator)
    original = weight.clone()
    prune_matrix(weight, ratio)
    count = round(ratio * weight.numel())
    assert int((weight == 0).sum()) == count
    kept = weight != 0
    assert torch.equal(weight[kept], original[kept])
    if 0 < count < weight.numel():
        assert original[~kept].abs().max() <= original[kept].abs().min()


@settings(max_examples=10, deadline=None)
@given(ratio=st.sampled_from([0.1, 0.25, 0.5, 0.7, 0.9]))
def test_compress_touches_only_decoder_linears_and_restores_bit_for_bit(ratio):
    model, _, _ = tiny_random_llama(seed=2)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    backup = DenseBackup(model)
    report = get("magnitude")(model, ratio)
    linears = compressible_linears(model)
    assert len(linears) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 blocks
    for name, module in linears.items():
        zeros = int((module.weight == 0).sum())
        assert zeros == round(ratio * module.weight.numel()), name
        assert report.per_layer[name] == pytest.approx(zeros / module.weight.numel())
    assert report.achieved == pytest.approx(ratio, abs=1e-3)
    touched = {f"{name}.weight" for name in linears}
    for name, p in model.named_parameters():
        if name not in touched:  # embeddings, norms, lm_head
            assert torch.equal(p, before[name]), name
    backup.restore()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_a_matrix_denser_than_asked_fails_loudly(fresh):
    first = next(iter(compressible_linears(fresh).values()))
    with torch.no_grad():
        first.weight[:, : first.weight.shape[1] // 2] = 0  # already half zero
    with pytest.raises(KickError, match="reached sparsity 0.5.*not the asked 0.1"):
        get("magnitude")(fresh, 0.1)


def test_a_failed_compression_leaves_the_dense_model_intact():
    from pytest_kick.config import OPTIONS, build
    from pytest_kick.runtime import Runtime

    raw = {opt.name: None for opt in OPTIONS}
    raw.update(model="tiny-random-llama")
    runtime = Runtime(build(raw, Path(".")))
    loaded = runtime.model("tiny-random-llama")
    first = next(iter(compressible_linears(loaded.model).values()))
    with torch.no_grad():
        first.weight[:, : first.weight.shape[1] // 2] = 0  # denser than the asked 0.1: magnitude must refuse
    before = {name: p.detach().clone() for name, p in loaded.model.named_parameters()}
    with pytest.raises(KickError):
        runtime.use_variant("tiny-random-llama", "magnitude", 0.1)
    for name, p in loaded.model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert runtime.use_variant("tiny-random-llama", None, None) is loaded
