"""A user's compressed checkpoint of ``--kick-model`` (``--kick-compressed DIR``), put into the loaded dense
model in place, so the gate compares the two and ``DenseWeights.restore()`` brings the dense model back.

The directory is what ``save_pretrained`` writes: ``model.safetensors``, or shards listed in
``model.safetensors.index.json``, with ``config.json`` (and, for some GPTQ / AWQ exports,
``quantize_config.json`` / ``quant_config.json``). Every stored weight becomes a dense float weight of the
model's dtype; nothing is run with low-bit kernels, so what is measured is the effect of the compressed
*values* (the LLM-KICK question), not of a kernel. Formats:

- ``safetensors``: plain tensors under the model's parameter names (a pruned model, a fake-quantized one);
  each is copied, cast to the parameter's dtype and device. Its ``bits`` is None (a float checkpoint).
- ``compressed-tensors`` (``config.json`` ``quantization_config.quant_method == "compressed-tensors"``, as
  llm-compressor saves): quantized weights (``<linear>.weight_packed``, ``weight_scale``,
  ``weight_zero_point``, ``weight_shape``, or int8 / fp8 ``weight`` with a scale) are dequantized by the
  ``compressed-tensors`` package itself (``CompressedTensorsDequantizer``, compressed-tensors >= 0.17), one
  module at a time. Its legacy sparse formats, which releases >= 0.15 no longer read, are decoded here:
  ``sparse-bitmask`` (``<linear>.shape``, ``.compressed``: the nonzero values row by row, ``.bitmask``:
  ``numpy.packbits(weight != 0, axis=-1, bitorder="little")``, ``.row_offsets``) and ``sparse-24-bitmask``
  (the same without ``row_offsets``), per ``compressed_tensors/compressors/sparse_compressors`` of
  compressed-tensors 0.14. Activation scales (``input_scale`` ...) are ignored with a warning: weights
  only are evaluated.
- ``gptq`` (AutoGPTQ / GPTQModel): ``qweight`` int32 ``[in * bits / 32, out]``, ``qzeros`` int32
  ``[groups, out * bits / 32]``, ``scales`` ``[groups, out]``, ``g_idx`` ``[in]`` (the group of every
  input; not monotonic with act-order). Values are packed along the first dimension of ``qweight`` (the
  second of ``qzeros``) as one little-endian bit stream: value ``k`` of a packed run sits at bits
  ``k * bits ...`` (for 3 bits, 32 values span 3 words, as AutoGPTQ's ``QuantLinear.pack``). Dequantized
  ``W[:, i] = scales[g_idx[i]] * (q[i] - z[g_idx[i]])``, transposed to nn.Linear's ``[out, in]``.
  **Zero-point offset**: AutoGPTQ's format (``checkpoint_format: "gptq"``, "v1", the default, and what
  GPTQModel still writes unless told otherwise) stores ``zero - 1`` and its kernels add the 1 back, so
  here ``z = stored + 1``; GPTQModel's ``checkpoint_format: "gptq_v2"`` stores the zero itself, so
  ``z = stored``. (A true zero point of 0 cannot be stored in v1: AutoGPTQ's packer would write -1.)
  Marlin / BitBLAS repacked GPTQ formats are refused.
- ``awq`` (AutoAWQ GEMM): ``qweight`` int32 ``[in, out * bits / 32]``, ``qzeros`` int32
  ``[groups, out * bits / 32]``, ``scales`` ``[groups, out]``, 4 bits. Each int32 holds 8 outputs, the
  4-bit field ``i`` (bits ``4i .. 4i+3``) holding output ``8j + ORDER[i]`` with AWQ's interleave
  ``ORDER = [0, 2, 4, 6, 1, 3, 5, 7]`` (AutoAWQ ``utils/packing_utils.py``). No zero offset:
  ``W[:, i] = scales[i // group] * (q[i] - z[i // group])``. GEMV / Marlin layouts are refused.

Tensor names must be the model's own parameter names, as ``save_pretrained`` of the same transformers class
writes them (checkpoints whose on-disk names differ from the modules', such as per-expert MoE weights that
transformers 5 fuses on load, are refused as not of ``--kick-model``). Before anything changes, the
checkpoint is checked against the model: ``config.json`` sizes, tensor names (every tensor must be a
parameter, a buffer, or part of a packed weight of one), shapes, and every linear layer of the decoder
blocks present; a failure is a KickError and the model stays dense. A tensor found corrupt only when
decoded (after others were written) puts the dense weights back (``dense.restore()``) before raising. The report's
sparsity is measured over the decoder-block linears, and, for quantized formats, ``bits`` is measured:
``ceil(log2(most distinct values in a (row, group)))`` with the checkpoint's own groups (GPTQ act-order
columns sorted by ``g_idx`` first), 128 inputs where the format has none.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from pytest_kick.compress.base import CompressionReport, compressible_linears
from pytest_kick.compress.spec import CHECKPOINT, Spec
from pytest_kick.errors import KickError, KickWarning

MEASURE_GROUP = 128  # inputs per group when measuring bits of a format without groups
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AutoAWQ GEMM: 4-bit field i of an int32 holds output 8j + AWQ_ORDER[i]
CT_WEIGHT_PARAMS = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_global_scale")
CT_SPARSE_PARAMS = ("shape", "compressed", "bitmask", "row_offsets")
ACTIVATION_PARAMS = ("input_scale", "input_zero_point", "input_global_scale", "output_scale", "output_zero_point",
                     "output_global_scale", "k_scale", "v_scale")
CONFIG_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size")
SHOWN = 5  # names quoted in an error


def load_into(model, directory, dense) -> CompressionReport:
    """Put the checkpoint in ``directory`` into ``model`` in place; ``dense`` (a DenseWeights) is told of every
    parameter first, so ``dense.restore()`` brings the dense model back. KickError, with the model unchanged,
    when the checkpoint is not one of ``model`` or its format is not supported."""
    import torch

    started = time.perf_counter()
    if directory is None:
        raise KickError("--kick-compressor checkpoint needs --kick-compressed DIR (the compressed model)")
    directory = Path(directory)
    store = _Store(directory)
    configs = _Configs(directory)
    try:
        _check_config(model, configs, directory)
        fmt = _format(store, configs)
        entries, consumed, ignored = _plan(fmt, store, configs, model)
        targets = _check(model, store, entries, consumed, ignored, directory, configs)
        dense.remember(sorted({name for name, _ in targets}))
        linears = compressible_linears(model)
        block_weights = {q + ".weight": q for q in linears}
        params = dict(model.named_parameters())
        measured, groups = {}, set()
        try:
            for name, entry in targets:
                param = params[name]
                value = entry.load()
                if tuple(value.shape) != tuple(param.shape):
                    raise KickError(f"{entry.source}: the checkpoint's weight has shape {tuple(value.shape)}, "
                                    f"--kick-model's {name} has {tuple(param.shape)}; the checkpoint is not of "
                                    f"--kick-model")
                with torch.no_grad():
                    param.copy_(value.to(device=param.device, dtype=param.dtype))
                if name in block_weights and entry.group is not False:
                    group = entry.group or MEASURE_GROUP
                    measured[block_weights[name]] = _levels(param, group, entry.perm)
                    groups.add(group)
        except BaseException:
            dense.restore()  # a half-loaded model must never pass for dense
            raise
    finally:
        store.close()
    per_layer, zeros, total = {}, 0, 0
    for qualified, module in linears.items():
        z = int((module.weight == 0).sum().item())
        per_layer[qualified] = z / module.weight.numel()
        zeros, total = zeros + z, total + module.weight.numel()
    stats = {"format": fmt, "tensors": len(store.names), "parameters": len({name for name, _ in targets})}
    if ignored:
        stats["ignored"] = len(ignored)
    bits = None
    if measured:
        most = max(measured.values())
        bits = max(1, most - 1).bit_length()
        stats["bits_group"] = min(groups)
    return CompressionReport("checkpoint", CHECKPOINT, zeros / total if total else 0.0, per_layer,
                             time.perf_counter() - started, bits=bits, stats=stats)


# --- reading the directory ---------------------------------------------------------------------------


class _Store:
    """The checkpoint's tensors by name, read lazily from its safetensors files."""

    def __init__(self, directory: Path):
        from safetensors import safe_open

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
                with safe_open(str(path), framework="pt") as handle:
                    for name in handle.keys():
                        self.files.setdefault(name, path)
        if not self.files:
            bins = sorted(p.name for p in directory.glob("*.bin"))
            hint = (f"; it holds {', '.join(bins[:SHOWN])}: save it with safetensors (save_pretrained's default)"
                    if bins else "")
            raise KickError(f"--kick-compressed: no safetensors weights in {directory}{hint}; give the directory "
                            f"the compressed model was saved to (model.safetensors, or shards with "
                            f"model.safetensors.index.json)")
        self.names = list(self.files)
        self._handles: dict = {}

    def _handle(self, name: str):
        from safetensors import safe_open

        path = self.files[name]
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="pt")
        return self._handles[path]

    def shape(self, name: str) -> tuple:
        return tuple(self._handle(name).get_slice(name).get_shape())

    def get(self, name: str):
        return self._handle(name).get_tensor(name)

    def close(self) -> None:
        self._handles.clear()


class _Configs:
    """config.json, and the quantization settings from it or from GPTQ's / AWQ's own files."""

    def __init__(self, directory: Path):
        self.model = _json(directory / "config.json") or {}
        quant = self.model.get("quantization_config") or self.model.get("compression_config")
        if quant is None and isinstance(self.model.get("text_config"), dict):
            quant = self.model["text_config"].get("quantization_config")
        self.gptq_file = _json(directory / "quantize_config.json")
        self.awq_file = _json(directory / "quant_config.json")
        self.quant = quant or self.gptq_file or self.awq_file or {}
        self.method = str(self.quant.get("quant_method", "")).lower()
        if not self.method and self.gptq_file:
            self.method = "gptq"
        elif not self.method and self.awq_file:
            self.method = "awq"
        self.directory = directory


def _json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise KickError(f"{path} is not valid JSON: {error}") from None


def _not_of_model(configs) -> str:
    named = configs.model.get("_name_or_path")
    base = f" (its config.json names {named})" if named else ""
    return (f"the checkpoint is not of --kick-model{base}: give --kick-model the dense model it was compressed "
            f"from")


def _check_config(model, configs, directory: Path) -> None:
    differ = []
    for key in CONFIG_SIZES:
        theirs, ours = configs.model.get(key), getattr(model.config, key, None)
        if theirs is not None and ours is not None and theirs != ours:
            differ.append(f"{key} {theirs} vs {ours}")
    if differ:
        raise KickError(f"{directory / 'config.json'} describes another model than --kick-model "
                        f"({', '.join(differ)}); {_not_of_model(configs)}")


# --- what each stored tensor becomes --------------------------------------------------------------------


class _Entry:
    """One model parameter the checkpoint provides: ``target`` (the checkpoint's name of it), its shape as
    far as known before decoding, how to load it, and the groups its bits are measured in (False: not
    measured, a float tensor; None: per row; else inputs per group; ``perm``: a column order first)."""

    def __init__(self, target, shape, load, source, group=False, perm=None):
        self.target, self.shape, self._load, self.source = target, shape, load, source
        self.group, self.perm = group, perm

    def load(self):
        return self._load()


def _format(store, configs) -> str:
    suffixes = {name.rpartition(".")[2] for name in store.names}
    method = configs.method
    if method in ("compressed-tensors", "compressed_tensors", "sparseml") or "weight_packed" in suffixes:
        if not method:
            raise KickError(f"{configs.directory} holds compressed-tensors weights (weight_packed) but its "
                            f"config.json has no quantization_config; put back the config.json saved with it")
        return "compressed-tensors"
    if method in ("gptq", "awq"):
        return method
    if method:
        raise KickError(f"{configs.directory}: quant_method {method!r} is not supported; --kick-compressed reads "
                        f"plain safetensors, compressed-tensors, GPTQ and AWQ (GEMM) checkpoints")
    if "qweight" in suffixes:
        if "g_idx" in suffixes:
            return "gptq"
        raise KickError(f"{configs.directory} holds packed weights (qweight) but neither a quantization_config in "
                        f"config.json nor quantize_config.json / quant_config.json says whether they are GPTQ "
                        f"or AWQ; put back the config files saved with it")
    return "safetensors"


def _by_module(names) -> dict:
    found: dict = {}
    for name in names:
        module, _, param = name.rpartition(".")
        found.setdefault(module, {})[param] = name
    return found


def _plan(fmt, store, configs, model):
    """(entries, consumed names, ignored names): what each stored tensor becomes."""
    modules = _by_module(store.names)
    entries, consumed, ignored = [], set(), []
    if fmt in ("gptq", "awq"):
        shapes = {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}
        settings = _gptq_settings(configs) if fmt == "gptq" else _awq_settings(configs)
        for module, params in modules.items():
            if "qweight" not in params:
                continue
            target = f"{module}.weight"
            if target not in shapes:
                continue  # reported with the other names that are not the model's
            make = _gptq_entry if fmt == "gptq" else _awq_entry
            entries.append(make(store, module, params, shapes[target], settings))
            consumed.update(params[p] for p in ("qweight", "qzeros", "scales", "g_idx") if p in params)
    elif fmt == "compressed-tensors":
        entries, consumed, ignored = _ct_plan(store, configs, modules)
    for name in store.names:
        if name not in consumed and name not in ignored:
            entries.append(_Entry(name, store.shape(name), lambda name=name: store.get(name), name))
    return entries, consumed, ignored


def _check(model, store, entries, consumed, ignored, directory, configs) -> list:
    """[(canonical parameter name, entry)] once names, shapes and coverage are known to fit the model."""
    aliases, shapes = {}, {}
    canonical = {id(p): name for name, p in model.named_parameters()}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases[name], shapes[name] = canonical[id(p)], tuple(p.shape)
    buffers = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    strangers = [e.source for e in entries if e.target not in aliases and e.target not in buffers]
    if strangers:
        raise KickError(f"{directory} holds {_count(strangers, 'tensor')} that --kick-model does not have (e.g. "
                        f"{', '.join(sorted(strangers)[:SHOWN])}); {_not_of_model(configs)}")
    for entry in entries:
        if entry.target in aliases and entry.shape is not None and tuple(entry.shape) != shapes[entry.target]:
            raise KickError(f"{entry.source}: the checkpoint holds shape {tuple(entry.shape)} but --kick-model's "
                            f"{entry.target} has shape {shapes[entry.target]}; {_not_of_model(configs)}")
    targets = [(aliases[e.target], e) for e in entries if e.target in aliases]
    given = {name for name, _ in targets}
    missing = [q for q in compressible_linears(model) if q + ".weight" not in given]
    if missing:
        raise KickError(f"{directory} lacks {_count(missing, 'linear layer')} of --kick-model's decoder blocks "
                        f"(e.g. {', '.join(missing[:SHOWN])}); {_not_of_model(configs)}")
    if ignored:
        warnings.warn(KickWarning(
            f"{directory}: {_count(ignored, 'activation quantization tensor')} (e.g. {ignored[0]}) ignored; the "
            f"checkpoint's weights are evaluated dequantized, with float activations"), stacklevel=3)
    return targets


def _count(items, word: str) -> str:
    return f"{len(items)} {word}" + ("" if len(items) == 1 else "s")


def _levels(param, group: int, perm) -> int:
    """Most distinct values in a (row, group of ``group`` inputs) of ``param``, columns in ``perm`` order."""
    from pytest_kick.compress.grid import levels_per_group

    weight = param.detach()
    if perm is not None:
        weight = weight[:, perm.to(weight.device)]
    return int(levels_per_group(weight, Spec(f"g{group}", "quant", group=group)).max().item())


# --- GPTQ and AWQ -------------------------------------------------------------------------------------


def _bits(value, where: str, allowed=(2, 3, 4, 8)):
    if value is None:
        return None
    if int(value) not in allowed:
        raise KickError(f"{where}: {value}-bit packed weights are not supported (only {allowed})")
    return int(value)


def _group(value):
    if value is None:
        return None
    value = int(value)
    return None if value <= 0 else value  # -1: one group per row


def _gptq_settings(configs) -> dict:
    q = configs.quant
    if q.get("is_marlin_format"):
        raise KickError(f"{configs.directory}: Marlin-repacked GPTQ weights are not supported; use the plain GPTQ "
                        f"export (checkpoint_format gptq or gptq_v2)")
    form = str(q.get("checkpoint_format") or q.get("format") or "gptq").lower()
    if form not in ("gptq", "gptq_v2"):
        raise KickError(f"{configs.directory}: GPTQ checkpoint_format {form!r} is not supported; use the plain GPTQ "
                        f"export (checkpoint_format gptq or gptq_v2)")
    return {"bits": _bits(q.get("bits"), str(configs.directory)), "group": _group(q.get("group_size")),
            "has_group": q.get("group_size") is not None,
            "offset": 1 if form == "gptq" else 0}  # v1 stores zero - 1 (see the module docstring)


def _awq_settings(configs) -> dict:
    q = configs.quant
    version = str(q.get("version", "gemm")).lower()
    if version != "gemm":
        raise KickError(f"{configs.directory}: AWQ version {version!r} is not supported; only the GEMM layout is "
                        f"(AutoAWQ's default)")
    bits = q.get("bits", q.get("w_bit"))
    group = q.get("group_size", q.get("q_group_size"))
    return {"bits": _bits(bits, str(configs.directory), allowed=(4,)) or 4, "group": _group(group),
            "has_group": group is not None, "offset": 0}


def _unpack(packed, bits: int, dim: int):
    """int32 ``packed`` -> int32 values, ``32 / bits`` times as many along ``dim``: runs of ``bits`` words
    along ``dim`` are little-endian bit streams of 32 values (for 2, 4, 8 bits: each word on its own)."""
    import torch

    x = packed.movedim(dim, 0)
    maxq = (1 << bits) - 1
    if 32 % bits == 0:
        fields = [(x >> (bits * k)) & maxq for k in range(32 // bits)]  # arithmetic shift: masked after
        out = torch.stack(fields, dim=1).reshape(x.shape[0] * (32 // bits), *x.shape[1:])
    else:
        if x.shape[0] % bits:
            raise KickError(f"{bits}-bit packed tensor of {x.shape[0]} words is not a whole number of "
                            f"{bits}-word runs")
        words = (x.to(torch.int64) & 0xFFFFFFFF).reshape(x.shape[0] // bits, bits, *x.shape[1:])
        fields = []
        for k in range(32):
            word, shift = divmod(k * bits, 32)
            value = words[:, word] >> shift
            if shift + bits > 32:
                value = value | (words[:, word + 1] << (32 - shift))
            fields.append(value & maxq)
        out = torch.stack(fields, dim=1).reshape(x.shape[0] // bits * 32, *x.shape[1:]).to(torch.int32)
    return out.movedim(0, dim)


def _packed_shapes(store, module, params, name_of):
    missing = [p for p in ("qzeros", "scales") if p not in params]
    if missing:
        raise KickError(f"{module}: {name_of} weights without {', '.join(missing)} are not supported")
    return store.shape(params["qweight"]), store.shape(params["qzeros"]), store.shape(params["scales"])


def _check_qzeros(name, shape, groups, out_features, bits) -> None:
    if len(shape) != 2 or shape[0] != groups or shape[1] * 32 // bits < out_features:
        raise KickError(f"{name}: shape {tuple(shape)} does not hold {bits}-bit zero points of {groups} groups of "
                        f"{out_features} outputs")


def _gptq_entry(store, module, params, shape, settings) -> _Entry:
    import torch

    out_features, in_features = shape
    qweight, qzeros, scales = _packed_shapes(store, module, params, "GPTQ")
    bits = settings["bits"] or _bits(qweight[0] * 32 // in_features if in_features else 0, module)
    source = params["qweight"]
    if tuple(qweight) != (in_features * bits // 32, out_features) or (in_features * bits) % 32:
        raise KickError(f"{source}: the checkpoint holds shape {tuple(qweight)} but --kick-model's {module}.weight "
                        f"{tuple(shape)} at {bits} bits packs (GPTQ) to {(in_features * bits // 32, out_features)}; "
                        f"the checkpoint is not of --kick-model")
    groups = scales[0]
    group = settings["group"] if settings["has_group"] else (in_features // groups if groups else None)
    if scales[1] != out_features or groups != (1 if group is None else -(-in_features // group)):
        raise KickError(f"{params['scales']}: shape {tuple(scales)} does not fit {groups} groups of {group} inputs "
                        f"of {module} {tuple(shape)}")
    _check_qzeros(params["qzeros"], qzeros, groups, out_features, bits)
    has_g_idx = "g_idx" in params
    perm = None
    if has_g_idx:
        g_idx = store.get(params["g_idx"]).to(torch.int64)
        if g_idx.numel() != in_features:
            raise KickError(f"{params['g_idx']}: {g_idx.numel()} entries for {in_features} inputs")
        if bool((g_idx[1:] < g_idx[:-1]).any()):  # act-order: measure bits on columns sorted by group
            perm = torch.argsort(g_idx, stable=True)

    def load():
        q = _unpack(store.get(params["qweight"]), bits, 0)  # [in, out]
        z = _unpack(store.get(params["qzeros"]), bits, 1)[:, :out_features] + settings["offset"]  # [groups, out]
        s = store.get(params["scales"]).float()
        idx = (store.get(params["g_idx"]).to(torch.int64) if has_g_idx
               else torch.arange(in_features) // (group or in_features))
        return ((q - z[idx]).float() * s[idx]).t().contiguous()

    return _Entry(f"{module}.weight", shape, load, source, group=group, perm=perm)


def _awq_entry(store, module, params, shape, settings) -> _Entry:
    import torch

    out_features, in_features = shape
    bits = settings["bits"]
    qweight, qzeros, scales = _packed_shapes(store, module, params, "AWQ")
    source = params["qweight"]
    if tuple(qweight) != (in_features, out_features * bits // 32) or (out_features * bits) % 32:
        raise KickError(f"{source}: the checkpoint holds shape {tuple(qweight)} but --kick-model's {module}.weight "
                        f"{tuple(shape)} at {bits} bits packs (AWQ) to {(in_features, out_features * bits // 32)}; "
                        f"the checkpoint is not of --kick-model")
    groups = scales[0]
    group = settings["group"] if settings["has_group"] else (in_features // groups if groups else None)
    if tuple(scales) != ((1 if group is None else -(-in_features // group)), out_features):
        raise KickError(f"{params['scales']}: shape {tuple(scales)} does not fit groups of {group} inputs of "
                        f"{module} {tuple(shape)}")
    _check_qzeros(params["qzeros"], qzeros, scales[0], out_features, bits)
    order = torch.tensor(AWQ_ORDER)

    def columns(packed):
        fields = _unpack(packed, bits, 1)  # [rows, 8 * words]: field i of word j at column 8j + i
        out = torch.empty(fields.shape, dtype=fields.dtype)
        out.view(fields.shape[0], -1, 8)[:, :, order] = fields.reshape(fields.shape[0], -1, 8)
        return out

    def load():
        q = columns(store.get(params["qweight"]))  # [in, out]
        z = columns(store.get(params["qzeros"]))  # [groups, out]
        s = store.get(params["scales"]).float()
        idx = torch.arange(in_features) // (group or in_features)
        return ((q - z[idx]).float() * s[idx]).t().contiguous()

    return _Entry(f"{module}.weight", shape, load, source, group=group)


# --- compressed-tensors -------------------------------------------------------------------------------


def _ct_plan(store, configs, modules):
    q = configs.quant
    transform = q.get("transform_config") or {}
    if transform.get("config_groups") if isinstance(transform, dict) else transform:
        raise KickError(f"{configs.directory}: compressed-tensors transforms (transform_config: rotations such as "
                        f"QuIP / SpinQuant) need online transforms at run time; they are not supported")
    sparse = (q.get("sparsity_config") or {}).get("format")
    if sparse in (None, "dense"):
        sparse = None
    elif sparse not in ("sparse-bitmask", "sparse-24-bitmask"):
        raise KickError(f"{configs.directory}: compressed-tensors sparsity format {sparse!r} is not supported "
                        f"(sparse-bitmask and sparse-24-bitmask are)")
    groups = q.get("config_groups") or {}
    quantized = [m for m, params in modules.items() if any(p in params for p in CT_WEIGHT_PARAMS)]
    # "dense" format: the weights are stored dequantized, next to their scales; nothing to decode
    stored_dense = str(q.get("format") or "") == "dense" and all(
        not isinstance(s, dict) or s.get("format") in (None, "dense") for s in groups.values())
    dequantizer = _ct_dequantizer(configs) if groups and quantized and not stored_dense else None
    measure = _ct_group(groups)
    entries, consumed, ignored = [], set(), []
    for module, params in modules.items():
        ignored += [params[p] for p in ACTIVATION_PARAMS if p in params]
        is_sparse = sparse is not None and "bitmask" in params
        is_quant = bool(groups) and module in quantized
        if stored_dense and is_quant and not is_sparse:  # the scales say it is quantized; the weight is plain
            consumed.update(params[p] for p in CT_WEIGHT_PARAMS if p in params)
            if "weight" in params:
                entries.append(_Entry(f"{module}.weight", store.shape(params["weight"]),
                                      lambda name=params["weight"]: store.get(name), params["weight"],
                                      group=measure))
                consumed.add(params["weight"])
            continue
        if not (is_sparse or is_quant):
            continue
        names = {p: n for p, n in params.items() if p not in ACTIVATION_PARAMS and p != "bias"}
        consumed.update(names.values())
        shape = None
        if "weight_shape" in names:
            shape = tuple(int(v) for v in store.get(names["weight_shape"]).flatten().tolist())
        elif is_sparse and "shape" in names:
            shape = tuple(int(v) for v in store.get(names["shape"]).flatten().tolist())
        elif "weight" in names:
            shape = store.shape(names["weight"])
        source = names.get("weight_packed") or names.get("compressed") or names.get("weight") or module
        load = _ct_loader(store, module, names, is_sparse, dequantizer if is_quant else None)
        entries.append(_Entry(f"{module}.weight", shape, load, source, group=measure if is_quant else False))
    return entries, consumed, ignored


def _ct_loader(store, module, names, is_sparse, dequantizer):
    def load():
        tensors = {f"{module}.{p}": store.get(n) for p, n in names.items() if p not in CT_SPARSE_PARAMS}
        if is_sparse:
            tensors[f"{module}.weight"] = _bitmask_decode(*(store.get(names[p]) for p in
                                                            ("shape", "compressed", "bitmask")))
        if dequantizer is not None:
            try:
                tensors = dequantizer.process(tensors)
            except (KeyError, ValueError, RuntimeError, NotImplementedError) as error:
                raise KickError(f"{module}: compressed-tensors cannot dequantize it ({type(error).__name__}: "
                                f"{error}); this checkpoint's format is not supported") from None
        left = sorted(n for n in tensors if n != f"{module}.weight")
        if f"{module}.weight" not in tensors or left:
            raise KickError(f"{module}: compressed-tensors left {', '.join(left) or 'no weight'} undecoded; this "
                            f"checkpoint's format is not supported")
        return tensors[f"{module}.weight"].float()

    return load


def _ct_group(groups: dict) -> int:
    """Inputs per group to measure bits in, from config_groups: the smallest group of any scheme (a group
    smaller than a scheme's own never holds more levels), else MEASURE_GROUP (channel and tensor strategies,
    preset names such as W4A16 -- whose group is 128)."""
    sizes = []
    for scheme in groups.values():
        weights = scheme.get("weights") if isinstance(scheme, dict) else None
        if not isinstance(weights, dict):
            continue
        if weights.get("group_size"):
            sizes.append(int(weights["group_size"]))
        elif weights.get("block_structure"):
            sizes.append(int(weights["block_structure"][-1]))
    return min(sizes, default=MEASURE_GROUP)


def _ct_dequantizer(configs):
    import torch

    try:
        import compressed_tensors
    except ImportError:
        raise KickError(f"{configs.directory} is a compressed-tensors checkpoint; reading it needs the "
                        f"compressed-tensors package: pip install compressed-tensors (or pytest-kick[checkpoint])"
                        ) from None
    try:
        from compressed_tensors.entrypoints.convert import CompressedTensorsDequantizer
    except ImportError:
        raise KickError(f"compressed-tensors {getattr(compressed_tensors, '__version__', '?')} is too old to "
                        f"dequantize {configs.directory}: pip install -U 'compressed-tensors>=0.17'") from None
    try:
        return CompressedTensorsDequantizer(str(configs.directory), dtype=torch.float32)
    except (ValueError, KeyError, StopIteration) as error:
        raise KickError(f"{configs.directory}: compressed-tensors cannot read its quantization_config "
                        f"({type(error).__name__}: {error})") from None


def _bitmask_decode(shape, values, bitmask):
    """A dense weight from compressed-tensors' sparse-bitmask / sparse-24-bitmask tensors: ``bitmask`` is
    ``numpy.packbits(weight != 0, axis=-1, bitorder="little")`` (uint8 [rows, ceil(cols / 8)]), ``values`` the
    nonzero entries in row-major order (2:4: [rows, cols / 2])."""
    import torch

    shape = [int(v) for v in shape.flatten().tolist()]
    bytes_ = bitmask.to(torch.uint8).to(torch.int32)
    bits = torch.stack([(bytes_ >> k) & 1 for k in range(8)], dim=-1).reshape(*bytes_.shape[:-1], -1)
    mask = bits[..., : shape[-1]].reshape(shape).bool()
    flat = values.flatten()
    if int(mask.sum()) != flat.numel():
        raise KickError(f"a sparse-bitmask weight marks {int(mask.sum())} nonzeros but stores {flat.numel()} values")
    out = torch.zeros(shape, dtype=values.dtype)
    out[mask] = flat
    return out
