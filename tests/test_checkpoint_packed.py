"""--kick-compressed: GPTQ and AWQ packed checkpoints unpacked to the exact quantized weights."""

import json

import numpy
import pytest
import torch
from checkpoint_helpers import (
    assert_same,
    fresh,
    gptq_checkpoint,
    pack_awq,
    rtn_codes,
    snapshot,
    to_int32,
    weights_of,
    write_config,
)
from safetensors.torch import load_file, save_file

from pytest_kick.compress.base import DenseWeights, compressible_linears
from pytest_kick.compress.checkpoint import _unpack, load_into

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("version", ["gptq", "gptq_v2"])
def test_gptq_unpacks_to_the_quantized_weights(tmp_path, bits, version):
    model = fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    expected = gptq_checkpoint(tmp_path / "ckpt", fresh(), bits, group=32, version=version)
    report = load_into(model, tmp_path / "ckpt", dense)
    params = dict(model.named_parameters())
    for name, weight in expected.items():
        assert torch.equal(params[name].detach(), weight), name
    assert report.bits == min(bits, 5)  # measured: a group of 32 inputs holds at most 32 = 2^5 values
    assert report.stats["format"] == "gptq"
    assert report.stats["bits_group"] == 32
    zeros = sum(int((w == 0).sum()) for w in expected.values())
    assert report.achieved == pytest.approx(zeros / sum(w.numel() for w in expected.values()))
    assert torch.equal(params["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    dense.restore()
    assert_same(model, before)


def test_gptq_act_order_and_quantize_config_json(tmp_path):
    model = fresh()
    dense = DenseWeights(model)
    expected = gptq_checkpoint(tmp_path, fresh(), 4, group=16, act_order=True, config="quantize_config.json")
    report = load_into(model, tmp_path, dense)
    params = dict(model.named_parameters())
    for name, weight in expected.items():
        assert torch.equal(params[name].detach(), weight), name
    assert report.bits == 4  # measured on columns sorted by g_idx: one group at a time


def test_gptq_v1_zero_offset(tmp_path):
    """The same stored zeros mean zero + 1 in v1 and zero itself in v2."""
    v1 = gptq_checkpoint(tmp_path / "v1", fresh(), 4, group=32, version="gptq")
    config = json.loads((tmp_path / "v1" / "config.json").read_text())
    config["quantization_config"]["checkpoint_format"] = "gptq_v2"
    (tmp_path / "v1" / "config.json").write_text(json.dumps(config))
    model = fresh()
    load_into(model, tmp_path / "v1", DenseWeights(model))
    name = next(iter(v1))
    scales = load_file(str(tmp_path / "v1" / "model.safetensors"))[name.replace(".weight", ".scales")]
    # read as v2, every weight is one scale step above the v1 value: (q - (z - 1)) * s = (q - z) * s + s
    shifted = v1[name] + scales.float()[torch.arange(64) // 32].t()
    assert torch.equal(dict(model.named_parameters())[name].detach(), shifted)


def test_gptq_3bit_layout():
    """AutoGPTQ's 3-bit layout: value 10 of a run spans bits 30-31 of word 0 and bit 0 of word 1; value 21
    bit 31 of word 1 and bits 0-1 of word 2."""
    words = torch.tensor([[-(2**31) + 2**30], [1], [0]], dtype=torch.int32)  # value 10 = 0b111
    values = _unpack(words, 3, 0)[:, 0]
    assert values.tolist() == [0] * 10 + [7] + [0] * 21
    words = torch.tensor([[0], [-(2**31)], [0b11]], dtype=torch.int32)  # value 21 = 0b111
    assert _unpack(words, 3, 0)[:, 0].tolist() == [0] * 21 + [7] + [0] * 10


def test_awq_order_fact():
    assert pack_awq(numpy.arange(8)[None, :])[0, 0] == 0x75316420


@pytest.mark.parametrize("config", ["config.json", "quant_config.json"])
def test_awq_unpacks_to_the_quantized_weights(tmp_path, config):
    model = fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    source = fresh()
    tensors, expected = weights_of(source), {}
    for name, module in compressible_linears(source).items():
        w = module.weight.detach()
        q, zero, scale, exact = rtn_codes(w, 4, torch.arange(w.shape[1]) // 32)
        del tensors[f"{name}.weight"]
        tensors[f"{name}.qweight"] = to_int32(pack_awq(q.t().numpy()))  # [in, out / 8]
        tensors[f"{name}.qzeros"] = to_int32(pack_awq(zero.numpy()))  # [groups, out / 8]
        tensors[f"{name}.scales"] = scale
        expected[f"{name}.weight"] = exact
    save_file(tensors, str(tmp_path / "model.safetensors"))
    if config == "config.json":
        write_config(
            tmp_path,
            source,
            {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": True, "version": "gemm"},
        )
    else:
        write_config(
            tmp_path,
            source,
            None,
            **{"quant_config.json": {"w_bit": 4, "q_group_size": 32, "zero_point": True, "version": "GEMM"}},
        )
    report = load_into(model, tmp_path, dense)
    params = dict(model.named_parameters())
    for name, weight in expected.items():
        assert torch.equal(params[name].detach(), weight), name
    assert (report.bits, report.stats["format"]) == (4, "awq")
    dense.restore()
    assert_same(model, before)


def test_awq_matches_compressed_tensors_reading_of_it(tmp_path):
    """An independent reader of AutoAWQ GEMM tensors: compressed-tensors' AutoAWQConverter (>= 0.17)."""
    converters = pytest.importorskip(
        "compressed_tensors.entrypoints.convert", reason="compressed-tensors >= 0.17 is not installed"
    )
    if not hasattr(converters, "AutoAWQConverter"):
        pytest.skip("this compressed-tensors has no AutoAWQConverter")
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.config import CompressionFormat

    source = fresh()
    name, module = next(iter(compressible_linears(source).items()))
    w = module.weight.detach()
    q, zero, scale, exact = rtn_codes(w, 4, torch.arange(w.shape[1]) // 32)
    tensors = weights_of(source)
    del tensors[f"{name}.weight"]
    packed = {
        f"{name}.qweight": to_int32(pack_awq(q.t().numpy())),
        f"{name}.qzeros": to_int32(pack_awq(zero.numpy())),
        f"{name}.scales": scale,
    }
    tensors.update(packed)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, source, {"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemm"})
    model = fresh()
    load_into(model, tmp_path, DenseWeights(model))

    converter = converters.AutoAWQConverter(bits=4, group_size=32)
    converted = converter.process(dict(packed))
    scheme = converter._build_quant_config().config_groups["config_group_0"]
    state = {key.rpartition(".")[2]: value for key, value in converted.items()}
    theirs = BaseCompressor.get_value_from_registry(CompressionFormat.pack_quantized.value).decompress(state, scheme)
    ours = dict(model.named_parameters())[f"{name}.weight"].detach()
    assert torch.equal(ours, exact)
    assert torch.allclose(theirs["weight"].float(), ours, rtol=1e-3, atol=0)
