"""GPTQ and AWQ checkpoints: packed int32 weights unpacked and dequantized to dense float weights.

``gptq`` (AutoGPTQ / GPTQModel): ``qweight`` int32 ``[in * bits / 32, out]``, ``qzeros`` int32
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

``awq`` (AutoAWQ GEMM): ``qweight`` int32 ``[in, out * bits / 32]``, ``qzeros`` int32
``[groups, out * bits / 32]``, ``scales`` ``[groups, out]``, 4 bits. Each int32 holds 8 outputs, the
4-bit field ``i`` (bits ``4i .. 4i+3``) holding output ``8j + ORDER[i]`` with AWQ's interleave
``ORDER = [0, 2, 4, 6, 1, 3, 5, 7]`` (AutoAWQ ``utils/packing_utils.py``). No zero offset:
``W[:, i] = scales[i // group] * (q[i] - z[i // group])``. GEMV / Marlin layouts are refused.
"""

from __future__ import annotations

from pytest_kick.compress.checkpoint_store import Entry
from pytest_kick.errors import KickError

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AutoAWQ GEMM: 4-bit field i of an int32 holds output 8j + AWQ_ORDER[i]


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


def gptq_settings(configs) -> dict:
    q = configs.quant
    if q.get("is_marlin_format"):
        raise KickError(
            f"{configs.directory}: Marlin-repacked GPTQ weights are not supported; use the plain GPTQ "
            f"export (checkpoint_format gptq or gptq_v2)"
        )
    form = str(q.get("checkpoint_format") or q.get("format") or "gptq").lower()
    if form not in ("gptq", "gptq_v2"):
        raise KickError(
            f"{configs.directory}: GPTQ checkpoint_format {form!r} is not supported; use the plain GPTQ "
            f"export (checkpoint_format gptq or gptq_v2)"
        )
    return {
        "bits": _bits(q.get("bits"), str(configs.directory)),
        "group": _group(q.get("group_size")),
        "has_group": q.get("group_size") is not None,
        "offset": 1 if form == "gptq" else 0,
    }  # v1 stores zero - 1 (see the module docstring)


def awq_settings(configs) -> dict:
    q = configs.quant
    version = str(q.get("version", "gemm")).lower()
    if version != "gemm":
        raise KickError(
            f"{configs.directory}: AWQ version {version!r} is not supported; only the GEMM layout is "
            f"(AutoAWQ's default)"
        )
    bits = q.get("bits", q.get("w_bit"))
    group = q.get("group_size", q.get("q_group_size"))
    return {
        "bits": _bits(bits, str(configs.directory), allowed=(4,)) or 4,
        "group": _group(group),
        "has_group": group is not None,
        "offset": 0,
    }


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
            raise KickError(f"{bits}-bit packed tensor of {x.shape[0]} words is not a whole number of {bits}-word runs")
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
        raise KickError(
            f"{name}: shape {tuple(shape)} does not hold {bits}-bit zero points of {groups} groups of "
            f"{out_features} outputs"
        )


def gptq_entry(store, module, params, shape, settings) -> Entry:
    import torch

    out_features, in_features = shape
    qweight, qzeros, scales = _packed_shapes(store, module, params, "GPTQ")
    bits = settings["bits"] or _bits(qweight[0] * 32 // in_features if in_features else 0, module)
    source = params["qweight"]
    if tuple(qweight) != (in_features * bits // 32, out_features) or (in_features * bits) % 32:
        raise KickError(
            f"{source}: the checkpoint holds shape {tuple(qweight)} but --kick-model's {module}.weight "
            f"{tuple(shape)} at {bits} bits packs (GPTQ) to {(in_features * bits // 32, out_features)}; "
            f"the checkpoint is not of --kick-model"
        )
    groups = scales[0]
    group = settings["group"] if settings["has_group"] else (in_features // groups if groups else None)
    if scales[1] != out_features or groups != (1 if group is None else -(-in_features // group)):
        raise KickError(
            f"{params['scales']}: shape {tuple(scales)} does not fit {groups} groups of {group} inputs "
            f"of {module} {tuple(shape)}"
        )
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
        idx = (
            store.get(params["g_idx"]).to(torch.int64)
            if has_g_idx
            else torch.arange(in_features) // (group or in_features)
        )
        return ((q - z[idx]).float() * s[idx]).t().contiguous()

    return Entry(f"{module}.weight", shape, load, source, group=group, perm=perm)


def awq_entry(store, module, params, shape, settings) -> Entry:
    import torch

    out_features, in_features = shape
    bits = settings["bits"]
    qweight, qzeros, scales = _packed_shapes(store, module, params, "AWQ")
    source = params["qweight"]
    if tuple(qweight) != (in_features, out_features * bits // 32) or (out_features * bits) % 32:
        raise KickError(
            f"{source}: the checkpoint holds shape {tuple(qweight)} but --kick-model's {module}.weight "
            f"{tuple(shape)} at {bits} bits packs (AWQ) to {(in_features, out_features * bits // 32)}; "
            f"the checkpoint is not of --kick-model"
        )
    groups = scales[0]
    group = settings["group"] if settings["has_group"] else (in_features // groups if groups else None)
    if tuple(scales) != ((1 if group is None else -(-in_features // group)), out_features):
        raise KickError(
            f"{params['scales']}: shape {tuple(scales)} does not fit groups of {group} inputs of "
            f"{module} {tuple(shape)}"
        )
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

    return Entry(f"{module}.weight", shape, load, source, group=group)
