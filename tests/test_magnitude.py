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


def test_zeros_the_dense_model_already_has_count_toward_the_ratio(fresh):
    """Dequantized GGUF weights hold exact zeros; a matrix already sparser than asked stays as it is."""
    first_name, first = next(iter(compressible_linears(fresh).items()))
    with torch.no_grad():
        first.weight[:, : first.weight.shape[1] // 2] = 0  # already half zero
    report = get("magnitude")(fresh, 0.1)
    assert report.per_layer[first_name] == pytest.approx(0.5)
    assert all(v == pytest.approx(0.1, abs=1e-3) for k, v in report.per_layer.items() if k != first_name)


def test_missing_the_asked_sparsity_fails_loudly():
    from pytest_kick.compress.base import CompressionReport, check_achieved

    report = CompressionReport("magnitude", 0.5, 0.4, {"layer": 0.4})
    with pytest.raises(KickError, match="layer reached sparsity 0.400000, not the expected 0.500000"):
        check_achieved(report, {"layer": 1000}, {"layer": 0.0})
    check_achieved(CompressionReport("magnitude", 0.5, 0.5, {"layer": 0.5}), {"layer": 1000}, {"layer": 0.0})


def test_a_failed_compression_leaves_the_dense_model_intact(monkeypatch):
    from pytest_kick.config import OPTIONS, build
    from pytest_kick.runtime import Runtime

    raw = {opt.name: None for opt in OPTIONS}
    raw.update(model="tiny-random-llama")
    runtime = Runtime(build(raw, Path(".")))
    loaded = runtime.model("tiny-random-llama")
    before = {name: p.detach().clone() for name, p in loaded.model.named_parameters()}
    import pytest_kick.compress.magnitude as magnitude

    def broken_check(*args):  # a compressor that prunes, then finds it missed the target
        raise KickError("magnitude@0.1: missed")

    monkeypatch.setattr(magnitude, "check_achieved", broken_check)
    with pytest.raises(KickError):
        runtime.use_variant("tiny-random-llama", "magnitude", 0.1)
    for name, p in loaded.model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert runtime.use_variant("tiny-random-llama", None, None) is loaded
