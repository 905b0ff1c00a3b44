"""A GGUF file's weights written to safetensors one tensor at a time, never the whole model in memory.

transformers' GGUF loader (``from_pretrained(gguf_file=...)``) dequantizes every tensor into one float32
state dict and then builds the model from it: the whole model in float32 is resident at once (Qwen2.5-Coder-
1.5B: 7.1 GB of weights, a 9.0 GB peak). Here the model is built on the ``meta`` device (names and shapes,
no storage), the safetensors header is written from those shapes, and each GGUF tensor is dequantized,
put into transformers' layout by transformers' own per-architecture ``TensorProcessor`` and name map, and
written at its offset before the next is read: the peak is one tensor plus what is mapped of the GGUF.
The file holds the same float32 values under the same names as a ``from_pretrained`` conversion (tested
bit for bit), a tied output embedding once, under the input embedding's name.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_kick.errors import KickError

SAFETENSORS_DTYPE = "F32"


def convert(path: Path, target_dir: Path) -> tuple[object, object]:
    """Write ``target_dir/model.safetensors`` from the GGUF at ``path``; (config, tokenizer) to save beside it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    config.dtype = torch.float32
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    layout = _layout(skeleton)
    write(path, skeleton, layout, target_dir / "model.safetensors")
    return skeleton.config, tokenizer


def _layout(model) -> dict[str, tuple[int, ...]]:
    """{name: shape} of every tensor to store: each shared tensor once, a tied output embedding under the
    input embedding's name (as transformers ties it back on load)."""
    inputs = model.get_input_embeddings()
    keep_first = {name for name, module in model.named_modules() if module is inputs}
    names_of: dict[int, list[str]] = {}
    state = model.state_dict(keep_vars=True)
    for name, tensor in state.items():
        names_of.setdefault(id(tensor), []).append(name)
    layout = {}
    for names in names_of.values():
        preferred = [n for n in names if n.rpartition(".")[0] in keep_first] or sorted(names)
        layout[preferred[0]] = tuple(state[preferred[0]].shape)
    return layout


def header(layout: dict[str, tuple[int, ...]]) -> tuple[bytes, dict[str, int]]:
    """The safetensors header (length prefix, JSON padded to 8 bytes) and each tensor's byte offset in the file."""
    offsets, entries, start = {}, {}, 0
    for name, shape in layout.items():
        size = 4
        for dim in shape:
            size *= dim
        entries[name] = {"dtype": SAFETENSORS_DTYPE, "shape": list(shape), "data_offsets": [start, start + size]}
        offsets[name] = start
        start += size
    entries["__metadata__"] = {"format": "pt"}
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    prefix = len(text).to_bytes(8, "little") + text
    return prefix, {name: len(prefix) + at for name, at in offsets.items()}


def write(path: Path, skeleton, layout: dict[str, tuple[int, ...]], out_path: Path) -> None:
    """Dequantize, process, map and write each tensor of the GGUF in turn; a KickError when one does not fit
    the model's layout or a tensor of the layout is missing from the file."""
    import numpy as np
    from gguf import GGUFReader, dequantize
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
        load_gguf_checkpoint,
        read_field,
    )

    parsed = load_gguf_checkpoint(str(path), return_tensors=False)  # the metadata only
    parsed["tensors"] = {}  # where a processor that merges tensors (mixture of experts) puts its results
    reader = GGUFReader(str(path))
    architecture = read_field(reader, "general.architecture")[0]
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=parsed.get("config", {}))
    mapping = get_gguf_hf_weights_map(skeleton, processor)
    prefix, offsets = header(layout)
    written: set[str] = set()
    with open(out_path, "wb") as out:
        out.write(prefix)

        def put(name: str, values) -> None:
            if name not in layout or name in written:  # a tied duplicate (stored once) or not a parameter
                return
            values = np.ascontiguousarray(values, dtype=np.float32)
            if tuple(values.shape) != layout[name]:
                raise KickError(
                    f"{path.name}: tensor {name} has shape {tuple(values.shape)}, the model expects {layout[name]}"
                )
            out.seek(offsets[name])
            out.write(memoryview(values).cast("B"))
            written.add(name)

        for tensor in reader.tensors:
            result = processor.process(
                weights=dequantize(tensor.data, tensor.tensor_type),
                name=tensor.name,
                tensor_key_mapping=mapping,
                parsed_parameters=parsed,
            )
            if result.name in mapping and result.weights is not None:
                put(mapping[result.name], result.weights)
        for name, values in parsed["tensors"].items():
            put(name, values.float().numpy() if hasattr(values, "numpy") else values)
    missing = [name for name in layout if name not in written]
    if missing:
        raise KickError(f"{path.name} holds no tensor for {', '.join(missing[:3])} ({len(missing)} missing)")
