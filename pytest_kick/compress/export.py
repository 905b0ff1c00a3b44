"""``--kick-export DIR``: each compressed variant written as a checkpoint a serving engine loads, so the
model that was gated here is the model that gets served (``vllm serve DIR/<variant>``).

``DIR/<model>-<compressor>-<ratio>/`` holds what ``save_pretrained`` writes (``config.json``,
``generation_config.json``, ``model.safetensors``), the tokenizer files, and ``kick-compression.json``:
the compression report (asked and achieved sparsity, bits, per-layer sparsity, seconds), the model's
identity and the format written. Weights keep the dtype the model was gated in.

Formats:
- pruned variants (``0.5``, ``2:4`` ...): the pruned weights as stored tensors (zeros included), a plain
  checkpoint with no ``quantization_config``; the sparsity (asked, achieved, structure, per layer) is in
  ``kick-compression.json``. A compressed-tensors ``sparsity_config`` is not written: vLLM 0.32 refuses
  every model that has one ("Sparsity support has been removed from compressed-tensors. Please use a model
  without sparsity configuration", measured by benchmarks/served_vllm.py), compressed-tensors 0.20 no
  longer has the sparse compressors, and a sparse model stored dense runs on dense kernels either way.
- quantized variants (gptq, rtn, awq), with compressed-tensors installed: ``pack-quantized`` (asymmetric
  int, one config group per weight scheme: ``group`` of ``spec.group`` inputs, or ``channel`` where a layer
  has no more inputs than that), the grid recovered from the values and checked bit-exact through
  compressed-tensors' own decompressor (compress/pack.py). Otherwise, or where a layer cannot be packed
  exactly (a ragged last group), the dequantized weights, which lie on the compressor's grid.
- int8 (LLM.int8(), ``w8a8``) replaces modules with int8 kernels' emulation; it is not exported (a
  warning says so).

The directory is written next to its final place and renamed into it, so a half-written export never
looks complete; an earlier export of the same variant is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from pytest_kick import __version__
from pytest_kick.compress.base import compressible_linears
from pytest_kick.compress.pack import pack_layer, quantization_config
from pytest_kick.compress.spec import CHECKPOINT
from pytest_kick.compress.spec import parse as parse_spec
from pytest_kick.errors import KickError, KickWarning
from pytest_kick.files import ordinary_mode

REPORT = "kick-compression.json"


def variant_dir(root: Path, model_name: str, compressor: str, ratio: str) -> Path:
    return Path(root) / f"{model_name}-{compressor}-{ratio.replace(':', 'of')}"


def export(loaded, model_name: str, report, root: Path) -> str:
    """Write ``loaded.model`` (as it is now: compressed) under ``root``; a line saying where, for the run."""
    spec = parse_spec(report.ratio) if report.ratio != CHECKPOINT else None
    if report.undo is not None:  # int8: modules replaced, no plain weights to write
        warnings.warn(
            KickWarning(
                f"--kick-export: {report.compressor}@{report.ratio} replaces modules (LLM.int8() "
                f"emulation) and is not exported"
            ),
            stacklevel=2,
        )
        return f"--kick-export: {report.compressor}@{report.ratio} not exported (module replacement)"
    target = variant_dir(root, model_name, report.compressor, report.ratio)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fmt = _write(loaded, spec, report, tmp)
        _record(loaded, model_name, report, fmt, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return f"--kick-export: {report.compressor}@{report.ratio} written to {target} ({fmt})"


def _write(loaded, spec, report, directory: Path) -> str:
    from safetensors.torch import save_file

    model = loaded.model
    tensors = _tensors(model)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    fmt = "safetensors"
    if spec is not None and spec.is_pruning:
        fmt = "safetensors (pruned weights stored dense)"
    elif spec is not None and spec.kind == "quant":
        packed = _packed(model, spec)
        if packed is None:
            fmt = f"safetensors (dequantized {spec.text} weights, on their {spec.bits}-bit grid)"
        else:
            replaced, config["quantization_config"] = packed
            for name in replaced:
                tensors.pop(name.rpartition(".")[0] + ".weight", None)
            tensors.update(replaced)
            fmt = f"compressed-tensors pack-quantized ({spec.text})"
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    ordinary_mode(directory / "model.safetensors")  # save_file writes 0600: a server run as another user reads it
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(directory)
    try:
        loaded.tokenizer.save_pretrained(directory)
    except Exception as err:  # tokenizers raise their own types
        raise KickError(f"--kick-export: cannot save the tokenizer to {directory}: {err}") from None
    return fmt


def _tensors(model) -> dict:
    """Every persistent tensor under its state-dict name, tied copies once (the first name, as transformers
    keeps the input embeddings and re-ties lm_head on load)."""
    found, seen = {}, set()
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape)) if tensor.numel() else None
        if key is not None and key in seen:
            continue
        seen.add(key)
        found[name] = tensor.detach().to("cpu").contiguous()
    return found


def _packed(model, spec):
    """({tensor name: tensor} of every decoder linear packed, quantization_config), or None when
    compressed-tensors is missing or some layer cannot be packed bit-exactly (see compress/pack.py)."""
    try:
        import compressed_tensors  # noqa: F401
    except ImportError:
        return None

    tensors, schemes = {}, {}
    for name, linear in compressible_linears(model).items():
        found = pack_layer(linear.weight, spec.bits, spec.group)
        if found is None:
            return None
        packed, args = found
        tensors.update({f"{name}.{key}": value.contiguous() for key, value in packed.items()})
        schemes.setdefault(json.dumps(args, sort_keys=True), (args, []))[1].append(name)
    return tensors, quantization_config(schemes)


def _record(loaded, model_name: str, report, fmt: str, directory: Path) -> None:
    body = {
        "pytest-kick": __version__,
        "model": model_name,
        "identity": loaded.identity,
        "dtype": loaded.dtype,
        "format": fmt,
        "compression": report.as_record(),
        "per_layer_sparsity": report.per_layer,
    }
    (directory / REPORT).write_text(json.dumps(body, indent=1, sort_keys=True, default=str) + "\n")
