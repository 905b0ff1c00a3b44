"""--kick-compressed: a user's compressed checkpoint put into the dense model, and taken out again.

Plain safetensors checkpoints, and the errors: a clear KickError, and the model left dense. The packed formats
are in test_checkpoint_packed.py (GPTQ / AWQ) and test_checkpoint_ct.py (compressed-tensors); the helpers in
checkpoint_helpers.py.
"""

import json

import pytest
import torch
from checkpoint_helpers import (
    assert_same,
    bitmask,
    ct_checkpoint,  # noqa: F401 -- imported from here by test_checkpoint_header
    expect_error,
    fresh,
    gptq_checkpoint,
    magnitude_prune_,
    snapshot,
    weights_of,
    write_config,
)
from safetensors.torch import load_file, save_file, save_model

from pytest_kick.compress.base import DenseWeights, compressible_linears
from pytest_kick.compress.checkpoint import load_into

pytestmark = pytest.mark.usefixtures("one_thread")


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
