"""Converting a GGUF tensor by tensor (models/gguf_stream.py): the same float32 weights, under the same names,
as transformers' whole-model GGUF loader, without ever holding the whole model (the 1.5B judge converts in
a 4 GB peak instead of 9 GB). A tiny real GGUF (tiny-random-llama, written with the gguf package) is converted
both ways."""

import json

import pytest
from test_cache_modes import write_tiny_gguf

from pytest_kick.errors import KickError
from pytest_kick.models import gguf_stream, loading


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_streamed_weights_equal_the_whole_model_loaders_bit_for_bit(tiny_gguf, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    loading._convert_gguf(tiny_gguf, tmp_path / "converted", {"name": "tiny"})
    stored = load_file(str(tmp_path / "converted" / "model.safetensors"))
    whole = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32)
    expected = whole.state_dict()
    assert set(stored) == set(expected)
    assert all(stored[name].dtype == torch.float32 and torch.equal(stored[name], expected[name]) for name in stored)
    config = json.loads((tmp_path / "converted" / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"


def test_the_converted_directory_loads_as_the_model_the_gguf_was_written_from(tiny_gguf, tmp_path):
    import torch

    from pytest_kick.models.tiny import tiny_random_llama

    loading._convert_gguf(tiny_gguf, tmp_path / "converted", {"name": "tiny"})
    model, _ = loading._from_dir(tmp_path / "converted", "converted")
    original = tiny_random_llama(seed=0)[0].state_dict()
    loaded = model.state_dict()
    assert all(torch.allclose(loaded[name].float(), tensor.float(), atol=1e-6) for name, tensor in original.items())


def test_a_tensor_the_model_has_and_the_gguf_lacks_is_named(tiny_gguf, tmp_path, monkeypatch):
    real = gguf_stream._layout
    monkeypatch.setattr(gguf_stream, "_layout", lambda model: {**real(model), "model.extra.weight": (2, 2)})
    with pytest.raises(KickError, match=r"tiny.gguf holds no tensor for model.extra.weight \(1 missing\)"):
        gguf_stream.convert(tiny_gguf, tmp_path)


def test_the_header_places_tensors_back_to_back_after_an_aligned_header():
    prefix, offsets = gguf_stream.header({"a": (2, 3), "b": (4,)})
    length = int.from_bytes(prefix[:8], "little")
    entries = json.loads(prefix[8 : 8 + length])
    assert len(prefix) % 8 == 0 and length == len(prefix) - 8
    assert entries["a"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert entries["b"]["data_offsets"] == [24, 40]
    assert offsets == {"a": len(prefix), "b": len(prefix) + 24}
