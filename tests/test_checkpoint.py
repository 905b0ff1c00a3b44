"""--kick-compressed: a user's compressed checkpoint put into the dense model, and taken out again.

The packed GPTQ / AWQ checkpoints are written here by small packers that follow the documented layouts
(see ``pytest_kick/compress/checkpoint.py``), from RTN-quantized weights whose exact values are known.
"""

import json
import sys

import numpy
import pytest
import torch
from safetensors.torch import load_file, save_file, save_model

from pytest_kick.compress import grid
from pytest_kick.compress.base import DenseWeights, compressible_linears
from pytest_kick.compress.checkpoint import AWQ_ORDER, _unpack, load_into
from pytest_kick.errors import KickError, KickWarning
from pytest_kick.models.tiny import tiny_random_llama

pytestmark = pytest.mark.usefixtures("one_thread")


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


# --- (a) plain safetensors -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["single", "sharded"])
@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_pruned_safetensors_loads_and_restores(tmp_path, layout, mode):
    model = fresh()
    dense_dir = tmp_path / "dense"
    dense_dir.mkdir()
    save_model(model, str(dense_dir / "model.safetensors"))
    dense = DenseWeights(model, dense_dir if mode == "disk" else None)
    before = snapshot(model)
    pruned = fresh()
    magnitude_prune_(pruned, 0.5)
    directory = tmp_path / "pruned"
    if layout == "single":
        directory.mkdir()
        save_model(pruned, str(directory / "model.safetensors"))
    else:
        pruned.save_pretrained(directory, max_shard_size="100KB")
        assert (directory / "model.safetensors.index.json").is_file()
        assert len(list(directory.glob("*.safetensors"))) > 1

    report = load_into(model, directory, dense)

    assert_same(model, snapshot(pruned))
    linears = compressible_linears(model)
    assert set(report.per_layer) == set(linears)
    for name, module in linears.items():
        assert report.per_layer[name] == pytest.approx(float((module.weight == 0).float().mean()))
        assert report.per_layer[name] == pytest.approx(0.5, abs=0.01)
    assert report.achieved == pytest.approx(0.5, abs=0.01)
    assert (report.compressor, report.ratio, report.bits) == ("checkpoint", "as-given", None)
    assert report.stats["format"] == "safetensors"
    assert report.stats["tensors"] == len(before)
    assert report.stats["parameters"] == len(before)
    dense.restore()
    assert_same(model, before)


def test_checkpoint_in_another_dtype_is_cast(tmp_path):
    model = fresh().to(torch.bfloat16)
    dense = DenseWeights(model)
    before = snapshot(model)
    pruned = fresh()
    magnitude_prune_(pruned)
    save_model(pruned, str(tmp_path / "model.safetensors"))
    load_into(model, tmp_path, dense)
    for name, p in model.named_parameters():
        assert p.dtype == torch.bfloat16
        assert torch.equal(p.detach(), dict(pruned.named_parameters())[name].detach().to(torch.bfloat16))
    dense.restore()
    assert_same(model, before)


# --- (b) GPTQ and AWQ packed ------------------------------------------------------------------------------


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


def pack_awq(q: numpy.ndarray) -> numpy.ndarray:
    """AutoAWQ GEMM packing of 4-bit values [rows, cols] along cols: field i of word j holds column
    8j + AWQ_ORDER[i]."""
    rows, cols = q.shape
    out = numpy.zeros((rows, cols // 8), dtype=numpy.uint64)
    for j in range(cols // 8):
        for i, column in enumerate(AWQ_ORDER):
            out[:, j] |= q[:, 8 * j + column].astype(numpy.uint64) << numpy.uint64(4 * i)
    return out


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


# --- (c) compressed-tensors ---------------------------------------------------------------------------------


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


def bitmask(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(numpy.packbits(mask.numpy(), axis=-1, bitorder="little"))


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


# --- (d) errors: a clear KickError, and the model left dense -------------------------------------------------


def expect_error(directory, match, model=None):
    model = model or fresh()
    dense = DenseWeights(model)
    before = snapshot(model)
    with pytest.raises(KickError, match=match) as raised:
        load_into(model, directory, dense)
    assert_same(model, before)
    assert not dense.dirty
    return str(raised.value)


def test_wrong_shape(tmp_path):
    tensors = weights_of(fresh())
    tensors["model.layers.1.mlp.up_proj.weight"] = torch.zeros(128, 32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    message = expect_error(tmp_path, "model.layers.1.mlp.up_proj.weight")
    assert "(128, 32)" in message and "(128, 64)" in message and "not of --kick-model" in message


def test_checkpoint_of_another_model(tmp_path):
    from transformers import LlamaForCausalLM

    config = fresh().config
    config.num_hidden_layers = 3
    other = LlamaForCausalLM(config)
    save_model(other, str(tmp_path / "model.safetensors"))  # no config.json: found by its names
    message = expect_error(tmp_path, "tensors that --kick-model does not have")
    assert "model.layers.2." in message and "not of --kick-model" in message


def test_config_of_another_model(tmp_path):
    from transformers import LlamaForCausalLM

    config = fresh().config
    config.hidden_size, config.intermediate_size = 32, 96
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    message = expect_error(tmp_path, "describes another model than --kick-model")
    assert "hidden_size 32 vs 64" in message


def test_missing_block_linear(tmp_path):
    tensors = weights_of(fresh())
    del tensors["model.layers.0.self_attn.v_proj.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    expect_error(tmp_path, r"model\.layers\.0\.self_attn\.v_proj\).*not of --kick-model")


def test_empty_directory(tmp_path):
    expect_error(tmp_path, "no safetensors weights in")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    expect_error(tmp_path, "pytorch_model.bin: save it with safetensors")


def _digest(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt(directory, how: str):
    """model.safetensors damaged the ways a user meets: random bytes, a cut-off copy, another format under
    this name (a PyTorch pickle), or a shard listed in the index that is not safetensors."""
    model = fresh()
    path = directory / "model.safetensors"
    if how == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif how == "truncated":
        save_model(model, str(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "pickle":
        torch.save(model.state_dict(), str(path))
    else:  # a shard of a sharded checkpoint
        model.save_pretrained(directory, max_shard_size="100KB")
        index = json.loads((directory / "model.safetensors.index.json").read_text())
        path = directory / sorted(set(index["weight_map"].values()))[-1]
        path.write_bytes(path.read_bytes()[:100])
    return path


@pytest.mark.parametrize(
    "how, what",
    [
        ("garbage", "header is not a safetensors header"),
        ("truncated", "shorter than its header says"),
        ("pickle", "header is not a safetensors header"),
        ("shard", "not a readable safetensors file"),
    ],
)
def test_corrupt_or_foreign_safetensors_names_the_file(tmp_path, how, what):
    path = _corrupt(tmp_path, how)
    before = {p.name: _digest(p) for p in tmp_path.iterdir()}
    message = expect_error(tmp_path, "is not a readable safetensors file")
    assert f"--kick-compressed: {path} is not a readable safetensors file" in message
    assert what in message and "left untouched" in message and "\n" not in message
    assert {p.name: _digest(p) for p in tmp_path.iterdir()} == before  # nothing in the directory changed


def test_not_a_directory(tmp_path):
    expect_error(tmp_path / "nowhere", "is not a directory")


def test_unsupported_formats(tmp_path):
    gptq_checkpoint(tmp_path, fresh(), 4, group=32)
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization_config"]["checkpoint_format"] = "marlin"
    (tmp_path / "config.json").write_text(json.dumps(config))
    expect_error(tmp_path, "checkpoint_format 'marlin' is not supported")
    config["quantization_config"] = {"quant_method": "bitsandbytes"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    expect_error(tmp_path, "quant_method 'bitsandbytes' is not supported")


def test_packed_shape_of_another_model(tmp_path):
    gptq_checkpoint(tmp_path, fresh(), 4, group=32)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["model.layers.0.mlp.down_proj.qweight"] = tensors["model.layers.0.mlp.down_proj.qweight"][:8]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    message = expect_error(tmp_path, "model.layers.0.mlp.down_proj.qweight")
    assert "(8, 64)" in message and "(16, 64)" in message


def test_failure_while_loading_restores_dense(tmp_path):
    """A corrupt tensor found only when decoded, after other weights were written: the model goes back."""
    pruned = fresh()
    magnitude_prune_(pruned)
    tensors = weights_of(pruned)
    last = list(compressible_linears(pruned))[-1]
    for name in compressible_linears(pruned):
        w = tensors.pop(f"{name}.weight")
        tensors[f"{name}.shape"] = torch.tensor(list(w.shape))
        tensors[f"{name}.compressed"] = w[w != 0][: -1 if name == last else None]
        tensors[f"{name}.bitmask"] = bitmask(w != 0)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path,
        pruned,
        {"quant_method": "compressed-tensors", "config_groups": {}, "sparsity_config": {"format": "sparse-bitmask"}},
    )
    expect_error(tmp_path, "marks .* nonzeros but stores")


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
