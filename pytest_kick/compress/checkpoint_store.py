"""Reading a ``--kick-compressed`` directory: its tensors by name (lazily, from ``model.safetensors`` or the
shards of ``model.safetensors.index.json``), its config files, and the ``Entry`` each stored parameter
becomes. A file that is not safetensors, truncated, or unreadable is a KickError naming the file and what is
wrong with it; nothing in the directory is ever modified.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_kick.compress.checkpoint_header import no_weights
from pytest_kick.errors import KickError

SHOWN = 5  # names quoted in an error


def unreadable(path: Path, err: Exception) -> KickError:
    """The message for a safetensors file the safetensors library refuses (corrupt, truncated, foreign)."""
    text = " ".join(str(err).split()) or type(err).__name__
    lowered = text.lower()
    if any(word in lowered for word in ("incomplete", "not fully covered", "too small", "eof", "out of bounds")):
        what = "it is shorter than its header says: truncated (an interrupted copy or download?)"
    elif "header" in lowered:
        what = "its header is not a safetensors header: the file is damaged, or another format under this name"
    else:
        what = "the safetensors library cannot read it"
    return KickError(
        f"--kick-compressed: {path} is not a readable safetensors file ({what}: {text}); it was "
        f"left untouched: save the compressed model again with save_pretrained"
    )


def _open(path: Path):
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt")
    except Exception as err:  # safetensors raises its own SafetensorError, and OSError / ValueError
        raise unreadable(path, err) from None


class Store:
    """The checkpoint's tensors by name, read lazily from its safetensors files."""

    def __init__(self, directory: Path):
        if not directory.is_dir():
            raise KickError(f"--kick-compressed: {directory} is not a directory")
        index = directory / "model.safetensors.index.json"
        if index.is_file():
            try:
                mapping = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError) as error:
                raise KickError(f"{index} is not a safetensors index (no weight_map): {error}") from None
            self.files = {name: directory / file for name, file in mapping.items()}
            missing = sorted({str(p.name) for p in self.files.values() if not p.is_file()})
            if missing:
                raise KickError(f"{index} lists shards that are not in {directory}: {', '.join(missing[:SHOWN])}")
        else:
            self.files = {}
            for path in sorted(directory.glob("*.safetensors")):
                with _open(path) as handle:
                    for name in handle.keys():
                        self.files.setdefault(name, path)
        if not self.files:
            raise no_weights(directory)
        self.names = list(self.files)
        self._handles: dict = {}

    def _handle(self, name: str):
        path = self.files[name]
        if path not in self._handles:
            self._handles[path] = _open(path)
        return self._handles[path]

    def shape(self, name: str) -> tuple:
        handle = self._handle(name)
        try:
            return tuple(handle.get_slice(name).get_shape())
        except Exception as err:  # a shard that lacks what the index says it holds, or a damaged entry
            raise unreadable(self.files[name], err) from None

    def get(self, name: str):
        handle = self._handle(name)
        try:
            return handle.get_tensor(name)
        except Exception as err:
            raise unreadable(self.files[name], err) from None

    def close(self) -> None:
        self._handles.clear()


class Configs:
    """config.json, and the quantization settings from it or from GPTQ's / AWQ's own files."""

    def __init__(self, directory: Path):
        self.model = read_json(directory / "config.json") or {}
        quant = self.model.get("quantization_config") or self.model.get("compression_config")
        if quant is None and isinstance(self.model.get("text_config"), dict):
            quant = self.model["text_config"].get("quantization_config")
        self.gptq_file = read_json(directory / "quantize_config.json")
        self.awq_file = read_json(directory / "quant_config.json")
        self.quant = quant or self.gptq_file or self.awq_file or {}
        self.method = str(self.quant.get("quant_method", "")).lower()
        if not self.method and self.gptq_file:
            self.method = "gptq"
        elif not self.method and self.awq_file:
            self.method = "awq"
        self.directory = directory


def read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise KickError(f"{path} is not valid JSON: {error}") from None


def not_of_model(configs) -> str:
    named = configs.model.get("_name_or_path")
    base = f" (its config.json names {named})" if named else ""
    return f"the checkpoint is not of --kick-model{base}: give --kick-model the dense model it was compressed from"


class Entry:
    """One model parameter the checkpoint provides: ``target`` (the checkpoint's name of it), its shape as
    far as known before decoding, how to load it, and the groups its bits are measured in (False: not
    measured, a float tensor; None: per row; else inputs per group; ``perm``: a column order first)."""

    def __init__(self, target, shape, load, source, group=False, perm=None):
        self.target, self.shape, self._load, self.source = target, shape, load, source
        self.group, self.perm = group, perm

    def load(self):
        return self._load()
