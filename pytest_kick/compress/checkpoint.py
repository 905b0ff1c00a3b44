"""A user's compressed checkpoint of ``--kick-model`` (``--kick-compressed DIR``), put into the loaded dense
model in place, so the gate compares the two and ``DenseWeights.restore()`` brings the dense model back.

The directory is what ``save_pretrained`` writes: ``model.safetensors``, or shards listed in
``model.safetensors.index.json``, with ``config.json`` (and, for some GPTQ / AWQ exports,
``quantize_config.json`` / ``quant_config.json``). Every stored weight becomes a dense float weight of the
model's dtype; nothing is run with low-bit kernels, so what is measured is the effect of the compressed
*values* (the LLM-KICK question), not of a kernel. Formats:

- ``safetensors``: plain tensors under the model's parameter names (a pruned model, a fake-quantized one);
  each is copied, cast to the parameter's dtype and device. Its ``bits`` is None (a float checkpoint).
- ``compressed-tensors`` (as llm-compressor saves): dequantized by the ``compressed-tensors`` package, its
  legacy sparse-bitmask formats decoded here (``checkpoint_ct``).
- ``gptq`` (AutoGPTQ / GPTQModel) and ``awq`` (AutoAWQ GEMM): packed int32 weights unpacked and
  dequantized (``checkpoint_packed``, which documents both layouts).

The directory is read by ``checkpoint_store``: a damaged or foreign safetensors file is an error naming it.

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

import time
import warnings
from pathlib import Path

from pytest_kick.compress.base import CompressionReport, compressible_linears
from pytest_kick.compress.checkpoint_ct import MEASURE_GROUP, ct_plan
from pytest_kick.compress.checkpoint_packed import (
    AWQ_ORDER,
    _unpack,
    awq_entry,
    awq_settings,
    gptq_entry,
    gptq_settings,
)
from pytest_kick.compress.checkpoint_store import SHOWN, Configs, Entry, Store, not_of_model
from pytest_kick.compress.spec import CHECKPOINT, Spec
from pytest_kick.errors import KickError, KickWarning

__all__ = ["load_into", "AWQ_ORDER", "_unpack"]  # the last two: the packing, for tests
CONFIG_SIZES = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


def load_into(model, directory, dense) -> CompressionReport:
    """Put the checkpoint in ``directory`` into ``model`` in place; ``dense`` (a DenseWeights) is told of every
    parameter first, so ``dense.restore()`` brings the dense model back. KickError, with the model unchanged,
    when the checkpoint is not one of ``model`` or its format is not supported."""
    import torch

    started = time.perf_counter()
    if directory is None:
        raise KickError("--kick-compressor checkpoint needs --kick-compressed DIR (the compressed model)")
    directory = Path(directory)
    store = Store(directory)
    configs = Configs(directory)
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
                    raise KickError(
                        f"{entry.source}: the checkpoint's weight has shape {tuple(value.shape)}, "
                        f"--kick-model's {name} has {tuple(param.shape)}; the checkpoint is not of "
                        f"--kick-model"
                    )
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
    return CompressionReport(
        "checkpoint",
        CHECKPOINT,
        zeros / total if total else 0.0,
        per_layer,
        time.perf_counter() - started,
        bits=bits,
        stats=stats,
    )


def _check_config(model, configs, directory: Path) -> None:
    differ = []
    for key in CONFIG_SIZES:
        theirs, ours = configs.model.get(key), getattr(model.config, key, None)
        if theirs is not None and ours is not None and theirs != ours:
            differ.append(f"{key} {theirs} vs {ours}")
    if differ:
        raise KickError(
            f"{directory / 'config.json'} describes another model than --kick-model "
            f"({', '.join(differ)}); {not_of_model(configs)}"
        )


# --- what each stored tensor becomes --------------------------------------------------------------------


def _format(store, configs) -> str:
    suffixes = {name.rpartition(".")[2] for name in store.names}
    method = configs.method
    if method in ("compressed-tensors", "compressed_tensors", "sparseml") or "weight_packed" in suffixes:
        if not method:
            raise KickError(
                f"{configs.directory} holds compressed-tensors weights (weight_packed) but its "
                f"config.json has no quantization_config; put back the config.json saved with it"
            )
        return "compressed-tensors"
    if method in ("gptq", "awq"):
        return method
    if method:
        raise KickError(
            f"{configs.directory}: quant_method {method!r} is not supported; --kick-compressed reads "
            f"plain safetensors, compressed-tensors, GPTQ and AWQ (GEMM) checkpoints"
        )
    if "qweight" in suffixes:
        if "g_idx" in suffixes:
            return "gptq"
        raise KickError(
            f"{configs.directory} holds packed weights (qweight) but neither a quantization_config in "
            f"config.json nor quantize_config.json / quant_config.json says whether they are GPTQ "
            f"or AWQ; put back the config files saved with it"
        )
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
        settings = gptq_settings(configs) if fmt == "gptq" else awq_settings(configs)
        for module, params in modules.items():
            if "qweight" not in params:
                continue
            target = f"{module}.weight"
            if target not in shapes:
                continue  # reported with the other names that are not the model's
            make = gptq_entry if fmt == "gptq" else awq_entry
            entries.append(make(store, module, params, shapes[target], settings))
            consumed.update(params[p] for p in ("qweight", "qzeros", "scales", "g_idx") if p in params)
    elif fmt == "compressed-tensors":
        entries, consumed, ignored = ct_plan(store, configs, modules)
    for name in store.names:
        if name not in consumed and name not in ignored:
            entries.append(Entry(name, store.shape(name), lambda name=name: store.get(name), name))
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
        raise KickError(
            f"{directory} holds {_count(strangers, 'tensor')} that --kick-model does not have (e.g. "
            f"{', '.join(sorted(strangers)[:SHOWN])}); {not_of_model(configs)}"
        )
    for entry in entries:
        if entry.target in aliases and entry.shape is not None and tuple(entry.shape) != shapes[entry.target]:
            raise KickError(
                f"{entry.source}: the checkpoint holds shape {tuple(entry.shape)} but --kick-model's "
                f"{entry.target} has shape {shapes[entry.target]}; {not_of_model(configs)}"
            )
    targets = [(aliases[e.target], e) for e in entries if e.target in aliases]
    given = {name for name, _ in targets}
    missing = [q for q in compressible_linears(model) if q + ".weight" not in given]
    if missing:
        raise KickError(
            f"{directory} lacks {_count(missing, 'linear layer')} of --kick-model's decoder blocks "
            f"(e.g. {', '.join(missing[:SHOWN])}); {not_of_model(configs)}"
        )
    if ignored:
        warnings.warn(
            KickWarning(
                f"{directory}: {_count(ignored, 'activation quantization tensor')} (e.g. {ignored[0]}) ignored; the "
                f"checkpoint's weights are evaluated dequantized, with float activations"
            ),
            stacklevel=3,
        )
    return targets


def _count(items, word: str) -> str:
    return f"{len(items)} {word}" + ("" if len(items) == 1 else "s")


def _levels(param, group: int, perm) -> int:
    """Most distinct values in a (row, group of ``group`` inputs) of ``param``, columns in ``perm`` order."""
    from pytest_kick.compress.grid import levels_per_group  # lazy: imports torch

    weight = param.detach()
    if perm is not None:
        weight = weight[:, perm.to(weight.device)]
    return int(levels_per_group(weight, Spec(f"g{group}", "quant", group=group)).max().item())
