"""A ``--kick-compressed`` directory checked while options are read, from its safetensors headers alone.

No torch and no tensor data: each file's first 8 bytes (the header's length, little-endian) and its JSON
header are read, so a checkpoint of any size is checked in milliseconds, before a case is collected. A
directory that cannot be loaded is then one usage error naming the file and what is wrong with it, not a
case that fails (or is skipped, when the dense model is inconclusive) long after the session began.

What a safetensors file must be: a header length that fits the file; a JSON object mapping each tensor name
to ``dtype`` (one the format defines), ``shape`` (whole numbers) and ``data_offsets`` ([begin, end] inside
the data that follows the header), with ``__metadata__`` (strings to strings) optional; each tensor's bytes
``prod(shape) * bits / 8``; the tensors covering the data section exactly, with no gap or overlap. With
``model.safetensors.index.json`` every listed shard must be there, be such a file and hold the tensors the
index puts in it. Against ``config.json``: no decoder layer ``layers.N.`` at or past ``num_hidden_layers``
(plus ``num_nextn_predict_layers``, the extra prediction layers some checkpoints keep), and a plain float
``*embed_tokens.weight`` of shape [vocab_size, hidden_size]. Tensors of another tower (vision, audio,
encoder) are not compared with the language model's sizes.

Everything the loader checks later (names and shapes against the model, formats) is still checked there.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from pytest_kick.errors import KickError

# Bits per element of every dtype the safetensors format defines.
DTYPE_BITS = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
PLAIN_FLOATS = {"F16", "BF16", "F32", "F64"}
MAX_HEADER = 100_000_000  # the safetensors library refuses larger headers
INDEX = "model.safetensors.index.json"
AGAIN = "save the compressed model again with save_pretrained"
LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
OTHER_TOWER = re.compile(r"vision|visual|audio|image|encoder|mm_projector|multi_modal")
SHOWN = 3


class BadFile(Exception):
    """What is wrong with one safetensors file (the file is named by the caller)."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors a safetensors file describes, checked against its size; BadFile saying what is wrong."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise BadFile(f"{size} bytes, shorter than the 8-byte header length every safetensors file starts with")
            (length,) = struct.unpack("<Q", prefix)
            if length > size - 8 or length > MAX_HEADER:
                raise BadFile(
                    f"header length {length} exceeds the file's {size} bytes"
                    if length > size - 8
                    else f"header length {length} exceeds the format's {MAX_HEADER}"
                )
            raw = handle.read(length)
    except PermissionError:
        raise BadFile("cannot read it (permission denied)") from None
    except OSError as err:
        raise BadFile(f"cannot read it ({err.strerror or err})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise BadFile(f"its {length}-byte header is not JSON: {_cut(str(err))}") from None
    if not isinstance(header, dict):
        raise BadFile(f"its header is JSON but not an object of tensors ({type(header).__name__})")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BadFile("its __metadata__ is not a map of strings to strings")
    data = size - 8 - length
    tensors = {name: _tensor(name, entry) for name, entry in header.items()}
    end = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != end:
            where = "overlaps the tensor before it" if info.begin < end else f"leaves bytes {end}..{info.begin} unused"
            raise BadFile(f"tensor {name}'s data_offsets [{info.begin}, {info.end}] {where}")
        end = info.end
    if end != data:
        what = "truncated (an interrupted copy or download?)" if end > data else "longer than its tensors"
        raise BadFile(f"its header describes {end} bytes of tensor data, the file holds {data}: {what}")
    return tensors


def _tensor(name: str, entry) -> TensorInfo:
    if not isinstance(entry, dict):
        raise BadFile(
            f"tensor {_cut(name)} is described by {_cut(json.dumps(entry))}, not by dtype, shape and data_offsets"
        )
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise BadFile(
            f"tensor {name} has dtype {_cut(json.dumps(dtype))}, not one of the format's ({', '.join(DTYPE_BITS)})"
        )
    if not isinstance(shape, list) or not all(_whole(n) for n in shape):
        raise BadFile(f"tensor {name} has shape {_cut(json.dumps(shape))}, not a list of whole numbers")
    if not (
        isinstance(offsets, list) and len(offsets) == 2 and all(_whole(n) for n in offsets) and offsets[0] <= offsets[1]
    ):
        raise BadFile(f"tensor {name} has data_offsets {_cut(json.dumps(offsets))}, not [begin, end]")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        raise BadFile(f"tensor {name} of {dtype} {shape} does not end on a whole byte")
    if offsets[1] - offsets[0] != bits // 8:
        raise BadFile(
            f"tensor {name} of {dtype} {shape} takes {bits // 8} bytes, its data_offsets {offsets} "
            f"give {offsets[1] - offsets[0]}"
        )
    return TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])


def check_checkpoint(directory: Path, option: str = "--kick-compressed") -> None:
    """KickError naming the file and what is wrong when ``directory`` cannot be a loadable checkpoint."""
    directory = Path(directory)
    index = directory / INDEX
    if index.is_file():
        shards = _shards(index, option)
        files = sorted({directory / name for name in shards.values()})
        missing = sorted({p.name for p in files if not p.is_file()})
        if missing:
            raise KickError(
                f"{option}: {index} lists shards that are not in {directory}: "
                f"{', '.join(missing[:SHOWN])}{' …' if len(missing) > SHOWN else ''}"
            )
    else:
        shards = None
        files = sorted(p for p in directory.glob("*.safetensors") if p.is_file())
    if not files:
        raise no_weights(directory, option)
    tensors: dict[str, tuple[Path, TensorInfo]] = {}
    for path in files:
        try:
            header = read_header(path)
        except BadFile as err:
            raise KickError(f"{option}: {path} is not a safetensors file ({err}): {AGAIN}") from None
        for name, info in header.items():
            tensors.setdefault(name, (path, info))
        if shards is not None:
            absent = sorted(n for n, shard in shards.items() if directory / shard == path and n not in header)
            if absent:
                raise KickError(
                    f"{option}: {index} puts {', '.join(absent[:SHOWN])} in {path.name}, which does not "
                    f"hold {'it' if len(absent) == 1 else 'them'}: {AGAIN}"
                )
    _against_config(directory, tensors, option)


def _shards(index: Path, option: str) -> dict[str, str]:
    try:
        mapping = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except PermissionError:
        raise KickError(f"{option}: cannot read {index} (permission denied)") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise KickError(
            f"{option}: {index} is not a safetensors index (no weight_map: {_cut(str(err))}): {AGAIN}"
        ) from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) and v for v in mapping.values()):
        raise KickError(
            f"{option}: {index} is not a safetensors index (its weight_map does not map tensor names "
            f"to shard files): {AGAIN}"
        )
    return mapping


def _against_config(directory: Path, tensors: dict, option: str) -> None:
    path = directory / "config.json"
    if not path.is_file():
        return
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise KickError(f"{option}: {path} is not valid JSON ({_cut(str(err))}): {AGAIN}") from None
    if not isinstance(config, dict):
        raise KickError(f"{option}: {path} is not a JSON object: {AGAIN}")
    own = {name: found for name, found in tensors.items() if not OTHER_TOWER.search(name)}
    layers = config.get("num_hidden_layers")
    if _whole(layers):
        extra = config.get("num_nextn_predict_layers")
        limit = layers + (extra if _whole(extra) else 0)
        beyond = sorted(
            (int(m.group(1)), name) for name in own if (m := LAYER.search(name)) and int(m.group(1)) >= limit
        )
        if beyond:
            number, name = beyond[0]
            raise KickError(
                f"{option}: {own[name][0]} holds {name} (layer {number}), but {path} has "
                f"num_hidden_layers {layers}: the weights and the config are of different models; {AGAIN}"
            )
    vocab, hidden = config.get("vocab_size"), config.get("hidden_size")
    if _whole(vocab) and _whole(hidden):
        for name, (file, info) in sorted(own.items()):
            if name.endswith("embed_tokens.weight") and info.dtype in PLAIN_FLOATS and info.shape != (vocab, hidden):
                raise KickError(
                    f"{option}: {file} holds {name} of shape {list(info.shape)}, but {path} has "
                    f"vocab_size {vocab} and hidden_size {hidden}: the weights and the config are of "
                    f"different models; {AGAIN}"
                )


def no_weights(directory: Path, option: str = "--kick-compressed") -> KickError:
    """The message for a checkpoint directory without safetensors weights (naming any .bin files it holds)."""
    bins = sorted(p.name for p in directory.glob("*.bin"))
    hint = f"; it holds {', '.join(bins[:SHOWN])}: save it with safetensors (save_pretrained's default)" if bins else ""
    return KickError(
        f"{option}: no safetensors weights in {directory}{hint}; give the directory the compressed "
        f"model was saved to (model.safetensors, or shards with {INDEX})"
    )
