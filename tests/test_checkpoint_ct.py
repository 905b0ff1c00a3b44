"""--kick-compressed: compressed-tensors checkpoints (packed, sparse bitmask, stored dense)."""

import sys

import pytest
import torch
from checkpoint_helpers import (
    assert_same,
    bitmask,
    ct_checkpoint,
    fresh,
    magnitude_prune_,
    snapshot,
    weights_of,
    write_config,
)
from safetensors.torch import load_file, save_file

from pytest_kick.compress import grid
from pytest_kick.compress.base import DenseWeights, compressible_linears
from pytest_kick.compress.checkpoint import load_into
from pytest_kick.errors import KickError, KickWarning

pytestmark = pytest.mark.usefixtures("one_thread")


def test_compressed_tensors_round_trip(tmp_path):
    model = fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    ct, expected = ct_checkpoint(tmp_path)
    converters = pytest.importorskip(
        "compressed_tensors.entrypoints.convert", reason=f"compressed-tensors {ct.__version__} is older than 0.17"
    )
    if not hasattr(converters, "CompressedTensorsDequantizer"):
        pytest.skip(f"compressed-tensors {ct.__version__} has no CompressedTensorsDequantizer (needs >= 0.17)")
    assert any(name.endswith(".weight_packed") for name in load_file(str(tmp_path / "model.safetensors")))
    report = load_into(model, tmp_path, dense)
    params = dict(model.named_parameters())
    for name, weight in expected.items():
        assert torch.equal(params[name].detach(), weight), name
        assert not torch.equal(weight, before[name])
    assert torch.equal(params["lm_head.weight"], before["lm_head.weight"])
    assert (report.bits, report.stats["format"], report.stats["bits_group"]) == (4, "compressed-tensors", 32)
    dense.restore()
    assert_same(model, before)


@pytest.mark.parametrize("form", ["sparse-bitmask", "sparse-24-bitmask"])
def test_compressed_tensors_sparse_bitmask(tmp_path, form):
    """The legacy sparse formats, written per their documented layout (no package needed to read them)."""
    model = fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    pruned = fresh()
    if form == "sparse-bitmask":
        magnitude_prune_(pruned, 0.6)
    else:
        with torch.no_grad():
            for module in compressible_linears(pruned).values():
                w = module.weight.view(-1, 4)
                w.scatter_(1, w.abs().topk(2, dim=1, largest=False).indices, 0.0)
    tensors = weights_of(pruned)
    for name in compressible_linears(pruned):
        w = tensors.pop(f"{name}.weight")
        mask = w != 0
        tensors[f"{name}.shape"] = torch.tensor(list(w.shape))
        tensors[f"{name}.compressed"] = w[mask] if form == "sparse-bitmask" else w[mask].reshape(w.shape[0], -1)
        tensors[f"{name}.bitmask"] = bitmask(mask)
        if form == "sparse-bitmask":
            counts = mask.sum(dim=1)
            tensors[f"{name}.row_offsets"] = torch.cumsum(counts, 0) - counts
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path,
        pruned,
        {
            "quant_method": "compressed-tensors",
            "format": "dense",
            "config_groups": {},
            "sparsity_config": {"format": form, "targets": ["Linear"]},
        },
    )
    report = load_into(model, tmp_path, dense)
    assert_same(model, snapshot(pruned))
    assert report.achieved == pytest.approx(0.6 if form == "sparse-bitmask" else 0.5, abs=0.01)
    assert (report.bits, report.stats["format"]) == (None, "compressed-tensors")
    dense.restore()
    assert_same(model, before)


def test_compressed_tensors_without_the_package(tmp_path, monkeypatch):
    source = fresh()
    tensors = weights_of(source)
    name = next(iter(compressible_linears(source)))
    del tensors[f"{name}.weight"]
    tensors[f"{name}.weight_packed"] = torch.zeros(64, 8, dtype=torch.int32)
    tensors[f"{name}.weight_scale"] = torch.ones(64, 2)
    tensors[f"{name}.weight_shape"] = torch.tensor([64, 64])
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path,
        source,
        {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {
                "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "group", "group_size": 32}}
            },
        },
    )
    monkeypatch.setitem(sys.modules, "compressed_tensors", None)  # import fails as if not installed
    model = fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    with pytest.raises(KickError, match="pip install compressed-tensors"):
        load_into(model, tmp_path, dense)
    assert_same(model, before)
    assert not dense.dirty


def test_activation_scales_are_ignored_with_a_warning(tmp_path):
    pruned = fresh()
    tensors = weights_of(pruned)
    tensors["model.layers.0.self_attn.q_proj.input_scale"] = torch.ones(1)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, pruned, {"quant_method": "compressed-tensors", "format": "dense", "config_groups": {}})
    model = fresh()
    with pytest.warns(KickWarning, match="input_scale"):
        report = load_into(model, tmp_path, DenseWeights(model))
    assert report.stats["ignored"] == 1


def test_compressed_tensors_stored_dense(tmp_path):
    """format "dense": fake-quantized float weights stored next to their scales; loaded as they are."""
    source = fresh()
    tensors = weights_of(source)
    for name, module in compressible_linears(source).items():
        w = grid.quantize_matrix(module.weight.detach(), 4, 32)
        tensors[f"{name}.weight"] = w
        tensors[f"{name}.weight_scale"] = torch.ones(w.shape[0], w.shape[1] // 32)
        tensors[f"{name}.weight_zero_point"] = torch.zeros(w.shape[0], w.shape[1] // 32, dtype=torch.int8)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path,
        source,
        {
            "quant_method": "compressed-tensors",
            "format": "dense",
            "config_groups": {
                "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "group", "group_size": 32}}
            },
        },
    )
    model = fresh()
    report = load_into(model, tmp_path, DenseWeights(model))
    params = dict(model.named_parameters())
    for name in compressible_linears(source):
        assert torch.equal(params[f"{name}.weight"].detach(), tensors[f"{name}.weight"])
    assert (report.bits, report.stats["bits_group"], report.stats["tensors"]) == (4, 32, len(tensors))
