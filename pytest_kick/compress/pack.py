"""Quantized weights packed as compressed-tensors ``pack-quantized`` (what vLLM's WNA16 kernels load), for
``--kick-export``.

The compressors (gptq, rtn, awq) leave float weights on an asymmetric grid and keep no scales. The grid
of each (row, group) is recovered from the values: a scale ``s`` with ``s * k`` reproducing every value
bit for bit for integers ``k`` spanning at most ``2**bits`` levels (tried: ``(max - min) / d`` for the
``d`` levels the span may cover, and a few float steps either side). compressed-tensors' own compressor
then packs ``round(w / s) + zero_point`` and its decompressor is run on the result: a layer is packed
only when that gives back exactly the gated weights. Anything else (a ragged last group, which
compressed-tensors' group strategy does not take; a grid not found) returns None, and the caller writes
the dequantized weights instead.
"""

from __future__ import annotations

from pytest_kick.errors import KickError

NUDGES = 4  # float steps tried either side of a scale estimate
SPANS = 8  # level counts tried below 2**bits (GPTQ's updates can leave the extreme levels unused)


def recover_grid(weight, bits: int, group: int):
    """(scale [rows, groups], k [rows, groups, group]) with ``scale * k == weight`` exactly, or None."""
    import torch

    rows, cols = weight.shape
    w = weight.detach().float().reshape(rows, cols // group, group)
    low, high = w.amin(-1), w.amax(-1)
    maxq = 2**bits - 1
    scale = torch.ones_like(low)
    k = torch.zeros_like(w)
    found = torch.zeros_like(low, dtype=torch.bool)
    for levels in range(maxq, max(0, maxq - SPANS), -1):
        base = (high - low) / levels
        base = torch.where(base > 0, base, torch.ones_like(base))
        for step in range(-NUDGES, NUDGES + 1):
            candidate = base
            toward = torch.full_like(base, float("inf") if step > 0 else float("-inf"))
            for _ in range(abs(step)):
                candidate = torch.nextafter(candidate, toward)
            ks = torch.round(w / candidate[..., None])
            exact = ((candidate[..., None] * ks) == w).all(-1) & ((ks.amax(-1) - ks.amin(-1)) <= maxq)
            new = exact & ~found
            scale[new], k[new] = candidate[new], ks[new]
            found |= new
            if bool(found.all()):
                return scale, k
    return None


def pack_layer(weight, bits: int, group: int | None):
    """compressed-tensors tensors (weight_packed, weight_scale, weight_zero_point, weight_shape) and the
    scheme's weight args of one linear, or None when it cannot be packed bit-exactly."""
    import torch
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    rows, cols = weight.shape
    size = cols if group is None or group >= cols else group
    if cols % size:
        return None
    grid = recover_grid(weight, bits, size)
    if grid is None:
        return None
    scale, k = grid
    half = 2 ** (bits - 1)
    zero = (-half - torch.clamp(k.amin(-1), max=0)).to(torch.int8)  # signed levels [-half, half - 1]
    if bool(((k.amax(-1) + zero) > half - 1).any()):
        return None
    args = {
        "num_bits": bits,
        "type": "int",
        "symmetric": False,
        "dynamic": False,
        **({"strategy": "channel"} if size == cols else {"strategy": "group", "group_size": size}),
    }
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**args))
    w = weight.detach().to("cpu")
    state = {"weight": w, "weight_scale": scale.to(w.dtype), "weight_zero_point": zero}
    try:
        packed = PackedQuantizationCompressor.compress(state, scheme)
        back = PackedQuantizationCompressor.decompress(dict(packed), scheme)["weight"]
    except (ValueError, RuntimeError, AssertionError) as err:
        raise KickError(f"compressed-tensors cannot pack a {bits}-bit layer of shape {tuple(w.shape)}: {err}") from None
    if back.dtype != w.dtype or not torch.equal(back, w):
        return None
    return packed, args


def quantization_config(schemes: dict) -> dict:
    """``config.json``'s quantization_config: one config group per weight scheme, listing its layers."""
    import compressed_tensors

    groups = {}
    for n, (args, names) in enumerate(schemes.values()):
        groups[f"group_{n}"] = {
            "targets": sorted(names),
            "weights": args,
            "input_activations": None,
            "output_activations": None,
            "format": "pack-quantized",
        }
    return {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": ["lm_head"],
        "version": getattr(compressed_tensors, "__version__", "unknown"),
    }
