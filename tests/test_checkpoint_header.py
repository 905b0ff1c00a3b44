"""--kick-compressed DIR checked from its safetensors headers while options are read: a directory that cannot
be loaded is a usage error naming the file, before any case runs (even when the dense model would be
inconclusive, which skips a case before its checkpoint is loaded)."""

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_checkpoint import _corrupt, ct_checkpoint, fresh, gptq_checkpoint, weights_of, write_config

from pytest_kick.compress.checkpoint_header import AGAIN, check_checkpoint, read_header
from pytest_kick.config import OPTIONS, build
from pytest_kick.errors import KickError


def values(**given):
    raw = {opt.name: None for opt in OPTIONS}
    raw.update({k.replace("_", "-"): v for k, v in given.items()})
    return raw


def configure(directory: Path, base: Path):
    return build(values(model="tiny-random-llama", compressor="checkpoint", compressed=str(directory)), base)


def refused(directory: Path) -> str:
    with pytest.raises(KickError) as raised:
        check_checkpoint(directory)
    message = str(raised.value)
    assert message.startswith("--kick-compressed: ") and "\n" not in message
    return message


def raw_file(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


# --- checkpoints that load are accepted ------------------------------------------------------------------


def test_valid_checkpoints_pass(tmp_path):
    model = fresh()
    single = tmp_path / "single"
    single.mkdir()
    save_file(weights_of(model), str(single / "model.safetensors"), metadata={"format": "pt"})
    write_config(single, model)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    for bits in (2, 3, 4, 8):
        gptq_checkpoint(tmp_path / f"gptq{bits}", fresh(), bits, group=32)
    for directory in sorted(p for p in tmp_path.iterdir() if p.is_dir()):
        check_checkpoint(directory)
    config = configure(single, tmp_path)
    assert config.compressed == single and config.compressors == ("checkpoint",)


def test_a_compressed_tensors_checkpoint_passes(tmp_path):
    ct_checkpoint(tmp_path)
    check_checkpoint(tmp_path)


def test_every_dtype_of_the_format_is_read(tmp_path):
    path = raw_file(
        tmp_path / "model.safetensors",
        {
            "__metadata__": {"format": "pt"},
            "a": {"dtype": "F8_E4M3", "shape": [2, 3], "data_offsets": [0, 6]},
            "b": {"dtype": "F4", "shape": [2, 3], "data_offsets": [6, 9]},
            "c": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [9, 12]},
            "d": {"dtype": "C64", "shape": [1], "data_offsets": [12, 20]},
            "e": {"dtype": "BOOL", "shape": [0, 5], "data_offsets": [20, 20]},
        },
        b"\0" * 20,
    )
    found = read_header(path)
    assert {name: (t.dtype, t.shape) for name, t in found.items()} == {
        "a": ("F8_E4M3", (2, 3)),
        "b": ("F4", (2, 3)),
        "c": ("F6_E2M3", (4,)),
        "d": ("C64", (1,)),
        "e": ("BOOL", (0, 5)),
    }
    check_checkpoint(tmp_path)


# --- files that are not safetensors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "how, what",
    [
        ("garbage", "header length "),
        ("truncated", "truncated"),
        ("pickle", "header length "),
        ("shard", "is not a safetensors file"),
    ],
)
def test_damaged_files_are_named(tmp_path, how, what):
    path = _corrupt(tmp_path, how)
    message = refused(tmp_path)
    assert message.startswith(f"--kick-compressed: {path} is not a safetensors file (") and what in message
    assert message.endswith(f": {AGAIN}")


def test_random_bytes_name_the_header_length_and_the_file_size(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x2a\x20" + bytes(range(200)) * 5)
    message = refused(tmp_path)
    assert message == (
        f"--kick-compressed: {path} is not a safetensors file (header length "
        f"{struct.unpack('<Q', path.read_bytes()[:8])[0]} exceeds the file's 1002 bytes): {AGAIN}"
    )
    path.write_bytes(b"abc")
    assert "3 bytes, shorter than the 8-byte header length" in refused(tmp_path)


@pytest.mark.parametrize(
    "header, data, what",
    [
        (b"{not json", b"", "9-byte header is not JSON"),
        ([1, 2], b"", "not an object of tensors (list)"),
        ({"__metadata__": {"n": 1}}, b"", "__metadata__ is not a map of strings to strings"),
        ({"w": {"dtype": "F12", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0", 'has dtype "F12", not one of'),
        ({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}}, b"\0" * 8, "not a list of whole numbers"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, "not [begin, end]"),
        (
            {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "tensor w of F32 [2, 3] takes 24 bytes, its data_offsets [0, 8] give 8",
        ),
        ({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}, b"\0", "does not end on a whole byte"),
        (
            {
                "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            },
            b"\0" * 8,
            "overlaps the tensor before it",
        ),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "leaves bytes 0..4 unused"),
        (
            {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
            b"\0" * 8,
            "describes 16 bytes of tensor data, the file holds 8: truncated",
        ),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "longer than its tensors"),
    ],
)
def test_headers_that_do_not_describe_the_file(tmp_path, header, data, what):
    path = raw_file(tmp_path / "model.safetensors", header, data)
    message = refused(tmp_path)
    assert message.startswith(f"--kick-compressed: {path} is not a safetensors file (") and what in message


def test_an_index_with_missing_or_wrong_shards(tmp_path):
    fresh().save_pretrained(tmp_path, max_shard_size="100KB")
    index = tmp_path / "model.safetensors.index.json"
    body = json.loads(index.read_text())
    shard = sorted(set(body["weight_map"].values()))[0]
    (tmp_path / shard).rename(tmp_path / "elsewhere.bin")
    assert f"lists shards that are not in {tmp_path}: {shard}" in refused(tmp_path)
    (tmp_path / "elsewhere.bin").rename(tmp_path / shard)
    body["weight_map"]["model.norm.weight"] = (
        shard if body["weight_map"]["model.norm.weight"] != shard else sorted(set(body["weight_map"].values()))[1]
    )
    index.write_text(json.dumps(body))
    assert "puts model.norm.weight in " in refused(tmp_path)
    index.write_text("{}")
    assert "is not a safetensors index (no weight_map" in refused(tmp_path)


def test_a_directory_without_safetensors(tmp_path):
    assert "no safetensors weights in" in refused(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert "it holds pytorch_model.bin: save it with safetensors" in refused(tmp_path)


# --- sizes against config.json ---------------------------------------------------------------------------


def test_more_layers_than_the_config_says(tmp_path):
    from transformers import LlamaForCausalLM

    config = fresh().config
    config.num_hidden_layers = 3
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    described = json.loads((tmp_path / "config.json").read_text())
    described["num_hidden_layers"] = 2
    (tmp_path / "config.json").write_text(json.dumps(described))
    message = refused(tmp_path)
    assert "holds model.layers.2." in message and "(layer 2), but" in message and "num_hidden_layers 2" in message
    described["num_nextn_predict_layers"] = 1  # a multi-token-prediction layer kept after the last one
    (tmp_path / "config.json").write_text(json.dumps(described))
    check_checkpoint(tmp_path)


def test_an_embedding_of_another_shape_than_the_config_says(tmp_path):
    model = fresh()
    tensors = weights_of(model)
    tensors["model.embed_tokens.weight"] = torch.zeros(300, 64)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, model)
    message = refused(tmp_path)
    vocab = model.config.vocab_size
    assert (
        f"holds model.embed_tokens.weight of shape [300, 64], but {tmp_path / 'config.json'} has vocab_size "
        f"{vocab} and hidden_size 64"
    ) in message
    tensors["model.embed_tokens.weight"] = torch.zeros(300, 64, dtype=torch.int8)  # not plain float: not compared
    save_file(tensors, str(tmp_path / "model.safetensors"))
    check_checkpoint(tmp_path)
    tensors["model.embed_tokens.weight"] = torch.zeros(vocab, 64)
    tensors["vision_tower.embed_tokens.weight"] = torch.zeros(7, 5)  # another tower: its own sizes
    tensors["vision_tower.encoder.layers.40.fc.weight"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    check_checkpoint(tmp_path)


# --- refused when options are read -----------------------------------------------------------------------


def test_build_refuses_a_damaged_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    path = _corrupt(tmp_path / "ckpt", "truncated")
    with pytest.raises(KickError, match=rf"^--kick-compressed: {path} is not a safetensors file \(.*truncated"):
        configure(tmp_path / "ckpt", tmp_path)


def test_random_bytes_are_a_usage_error_before_anything_runs(pytester):
    """tiny-random-llama is at chance on factoid_qa: its dense run is inconclusive, which skipped the case
    before the checkpoint was ever read (the run passed as "skipped")."""
    (pytester.path / "ckpt").mkdir()
    (pytester.path / "ckpt" / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    result = pytester.runpytest_subprocess(
        "--kick-model",
        "tiny-random-llama",
        "--kick-compressor",
        "checkpoint",
        "--kick-compressed",
        "ckpt",
        "--kick-tasks",
        "factoid_qa",
        "--kick-limit",
        "4",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"--kick-compressed: {pytester.path / 'ckpt' / 'model.safetensors'} is not a safetensors file" in err
    assert "exceeds the file's 1024 bytes" in err
    assert not (pytester.path / ".kick").exists()  # refused before any model was loaded or cache written
