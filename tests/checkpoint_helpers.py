"""Shared helpers of the --kick-compressed checkpoint tests (test_checkpoint*.py).

The packed GPTQ / AWQ checkpoints are written here by small packers that follow the documented layouts
(see ``pytest_kick/compress/checkpoint.py``), from RTN-quantized weights whose exact values are known.
"""

import json

import numpy
import pytest
import torch
from safetensors.torch import save_file

from pytest_kick.compress import grid
from pytest_kick.compress.base import DenseWeights, compressible_linears
from pytest_kick.compress.checkpoint import AWQ_ORDER, load_into
from pytest_kick.errors import KickError
from pytest_kick.models.tiny import tiny_random_llama


def fresh(seed=0):
    return tiny_random_llama(seed=seed)[0].eval()


def snapshot(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_same(model, weights: dict) -> None:
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), weights[name]), name


def weights_of(model) -> dict:
    """{parameter name: tensor} as save_model would write them."""
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters()}


def write_config(directory, model, quantization=None, **files):
    config = model.config.to_dict()
    if quantization is not None:
        config["quantization_config"] = quantization
    (directory / "config.json").write_text(json.dumps(config))
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content))


def magnitude_prune_(model, share=0.5) -> None:
    with torch.no_grad():
        for module in compressible_linears(model).values():
            w = module.weight
            k = int(w.numel() * share)
            threshold = w.abs().flatten().kthvalue(k).values
            w[w.abs() <= threshold] = 0


def to_int32(values: numpy.ndarray) -> torch.Tensor:
    return torch.from_numpy(values.astype(numpy.uint32).view(numpy.int32))


def pack_stream(q: numpy.ndarray, bits: int) -> numpy.ndarray:
    """Pack int values along axis 0 as GPTQ does: every run of 32 values is one little-endian bit stream of
    ``bits`` 32-bit words (value k at bits k*bits ... of the stream)."""
    rows, cols = q.shape
    assert rows % 32 == 0
    out = numpy.zeros((rows // 32 * bits, cols), dtype=numpy.uint64)
    for run in range(rows // 32):
        for col in range(cols):
            stream = 0
            for k in range(32):
                stream |= int(q[run * 32 + k, col]) << (k * bits)
            for w in range(bits):
                out[run * bits + w, col] = (stream >> (32 * w)) & 0xFFFFFFFF
    return out


def rtn_codes(weight: torch.Tensor, bits: int, groups: torch.Tensor, min_zero: int = 0):
    """Known RTN quantization of ``weight`` [out, in] with the group of every input in ``groups``:
    (q [out, in] int, zero [n_groups, out] int, scale fp16 [n_groups, out]), and the exact dequantized weight."""
    maxq = 2**bits - 1
    n_groups = int(groups.max()) + 1
    scale = torch.empty(n_groups, weight.shape[0])
    zero = torch.empty(n_groups, weight.shape[0])
    for g in range(n_groups):
        s, z = grid.minmax_params(weight[:, groups == g], maxq)
        scale[g], zero[g] = s[:, 0], torch.clamp(z[:, 0], min_zero, maxq)
    scale = scale.half()
    s_cols, z_cols = scale.float()[groups].t(), zero[groups].t()  # [out, in]
    q = torch.clamp(torch.round(weight / s_cols) + z_cols, 0, maxq)
    exact = (q - z_cols) * s_cols
    return q.to(torch.int64), zero.to(torch.int64), scale, exact


def gptq_checkpoint(directory, dense_model, bits, group, version="gptq", act_order=False, config="config.json"):
    """A GPTQ-packed checkpoint of ``dense_model``'s block linears (other tensors plain), and the exact weights."""
    tensors = weights_of(dense_model)
    expected = {}
    generator = torch.Generator().manual_seed(bits)
    for name, module in compressible_linears(dense_model).items():
        w = module.weight.detach()
        in_features = w.shape[1]
        order = torch.randperm(in_features, generator=generator) if act_order else torch.arange(in_features)
        groups = torch.empty(in_features, dtype=torch.int64)
        groups[order] = torch.arange(in_features) // group
        # v1 stores zero - 1: keep every zero >= 1 so the known grid is storable
        q, zero, scale, exact = rtn_codes(w, bits, groups, min_zero=1 if version == "gptq" else 0)
        stored_zero = zero - 1 if version == "gptq" else zero
        del tensors[f"{name}.weight"]
        tensors[f"{name}.qweight"] = to_int32(pack_stream(q.t().numpy(), bits))
        tensors[f"{name}.qzeros"] = to_int32(pack_stream(stored_zero.t().numpy(), bits).T.copy())
        tensors[f"{name}.scales"] = scale
        tensors[f"{name}.g_idx"] = groups.to(torch.int32)
        expected[f"{name}.weight"] = exact
    directory.mkdir(exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"))
    settings = {
        "bits": bits,
        "group_size": group,
        "desc_act": act_order,
        "sym": False,
        "checkpoint_format": version,
        "quant_method": "gptq",
    }
    if config == "config.json":
        write_config(directory, dense_model, settings)
    else:
        write_config(directory, dense_model, None, **{"quantize_config.json": settings})
    return expected


def pack_awq(q: numpy.ndarray) -> numpy.ndarray:
    """AutoAWQ GEMM packing of 4-bit values [rows, cols] along cols: field i of word j holds column
    8j + AWQ_ORDER[i]."""
    rows, cols = q.shape
    out = numpy.zeros((rows, cols // 8), dtype=numpy.uint64)
    for j in range(cols // 8):
        for i, column in enumerate(AWQ_ORDER):
            out[:, j] |= q[:, 8 * j + column].astype(numpy.uint64) << numpy.uint64(4 * i)
    return out


def ct_checkpoint(directory):
    """A W4 group-32 asymmetric pack-quantized checkpoint made by compressed-tensors itself, and the weights
    the package's own fake quantization gives."""
    ct = pytest.importorskip(
        "compressed_tensors", reason="compressed-tensors is not installed (pip install compressed-tensors)"
    )
    from compressed_tensors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    source = fresh()
    args = QuantizationArgs(num_bits=4, type="int", symmetric=False, strategy="group", group_size=32)
    config = QuantizationConfig(
        config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=args)}, ignore=["lm_head"]
    )
    apply_quantization_config(source, config, show_progress=False)
    expected = {}
    for name, module in compressible_linears(source).items():
        w = module.weight.detach()
        grouped = w.reshape(w.shape[0], -1, 32)
        scale, zero = calculate_qparams(grouped.amin(-1), grouped.amax(-1), args)
        with torch.no_grad():
            module.weight_scale.copy_(scale)
            module.weight_zero_point.copy_(zero)
        expected[f"{name}.weight"] = fake_quantize(w, module.weight_scale, module.weight_zero_point, args)
    compressor = ModelCompressor.from_pretrained_model(source, "pack-quantized")
    compressor.compress_model(source)
    source.save_pretrained(directory)
    compressor.update_config(directory)
    return ct, expected


def bitmask(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(numpy.packbits(mask.numpy(), axis=-1, bitorder="little"))


def expect_error(directory, match, model=None):
    model = model or fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    with pytest.raises(KickError, match=match) as raised:
        load_into(model, directory, dense)
    assert_same(model, before)
    assert not dense.dirty
    return str(raised.value)
