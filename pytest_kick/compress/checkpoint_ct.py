"""compressed-tensors checkpoints (as llm-compressor saves them), dequantized to dense float weights.

``compressed-tensors`` (``config.json`` ``quantization_config.quant_method == "compressed-tensors"``, as
llm-compressor saves): quantized weights (``<linear>.weight_packed``, ``weight_scale``,
``weight_zero_point``, ``weight_shape``, or int8 / fp8 ``weight`` with a scale) are dequantized by the
``compressed-tensors`` package itself (``CompressedTensorsDequantizer``, compressed-tensors >= 0.17), one
module at a time. Its legacy sparse formats, which releases >= 0.15 no longer read, are decoded here:
``sparse-bitmask`` (``<linear>.shape``, ``.compressed``: the nonzero values row by row, ``.bitmask``:
``numpy.packbits(weight != 0, axis=-1, bitorder="little")``, ``.row_offsets``) and ``sparse-24-bitmask``
(the same without ``row_offsets``), per ``compressed_tensors/compressors/sparse_compressors`` of
compressed-tensors 0.14. Activation scales (``input_scale`` ...) are ignored with a warning: weights
only are evaluated.
"""

from __future__ import annotations

from pytest_kick.compress.checkpoint_store import Entry
from pytest_kick.errors import KickError

MEASURE_GROUP = 128  # inputs per group when measuring bits of a format without groups
CT_WEIGHT_PARAMS = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_global_scale")
CT_SPARSE_PARAMS = ("shape", "compressed", "bitmask", "row_offsets")
ACTIVATION_PARAMS = (
    "input_scale",
    "input_zero_point",
    "input_global_scale",
    "output_scale",
    "output_zero_point",
    "output_global_scale",
    "k_scale",
    "v_scale",
)


def ct_plan(store, configs, modules):
    q = configs.quant
    transform = q.get("transform_config") or {}
    if transform.get("config_groups") if isinstance(transform, dict) else transform:
        raise KickError(
            f"{configs.directory}: compressed-tensors transforms (transform_config: rotations such as "
            f"QuIP / SpinQuant) need online transforms at run time; they are not supported"
        )
    sparse = (q.get("sparsity_config") or {}).get("format")
    if sparse in (None, "dense"):
        sparse = None
    elif sparse not in ("sparse-bitmask", "sparse-24-bitmask"):
        raise KickError(
            f"{configs.directory}: compressed-tensors sparsity format {sparse!r} is not supported "
            f"(sparse-bitmask and sparse-24-bitmask are)"
        )
    groups = q.get("config_groups") or {}
    quantized = [m for m, params in modules.items() if any(p in params for p in CT_WEIGHT_PARAMS)]
    # "dense" format: the weights are stored dequantized, next to their scales; nothing to decode
    stored_dense = str(q.get("format") or "") == "dense" and all(
        not isinstance(s, dict) or s.get("format") in (None, "dense") for s in groups.values()
    )
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
                entries.append(
                    Entry(
                        f"{module}.weight",
                        store.shape(params["weight"]),
                        lambda name=params["weight"]: store.get(name),
                        params["weight"],
                        group=measure,
                    )
                )
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
        entries.append(Entry(f"{module}.weight", shape, load, source, group=measure if is_quant else False))
    return entries, consumed, ignored


def _ct_loader(store, module, names, is_sparse, dequantizer):
    def load():
        tensors = {f"{module}.{p}": store.get(n) for p, n in names.items() if p not in CT_SPARSE_PARAMS}
        if is_sparse:
            tensors[f"{module}.weight"] = _bitmask_decode(
                *(store.get(names[p]) for p in ("shape", "compressed", "bitmask"))
            )
        if dequantizer is not None:
            try:
                tensors = dequantizer.process(tensors)
            except (KeyError, ValueError, RuntimeError, NotImplementedError) as error:
                raise KickError(
                    f"{module}: compressed-tensors cannot dequantize it ({type(error).__name__}: "
                    f"{error}); this checkpoint's format is not supported"
                ) from None
        left = sorted(n for n in tensors if n != f"{module}.weight")
        if f"{module}.weight" not in tensors or left:
            raise KickError(
                f"{module}: compressed-tensors left {', '.join(left) or 'no weight'} undecoded; this "
                f"checkpoint's format is not supported"
            )
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
        raise KickError(
            f"{configs.directory} is a compressed-tensors checkpoint; reading it needs the "
            f"compressed-tensors package: pip install compressed-tensors (or pytest-kick[checkpoint])"
        ) from None
    try:
        from compressed_tensors.entrypoints.convert import CompressedTensorsDequantizer
    except ImportError:
        raise KickError(
            f"compressed-tensors {getattr(compressed_tensors, '__version__', '?')} is too old to "
            f"dequantize {configs.directory}: pip install -U 'compressed-tensors>=0.17'"
        ) from None
    try:
        return CompressedTensorsDequantizer(str(configs.directory), dtype=torch.float32)
    except (ValueError, KeyError, StopIteration) as error:
        raise KickError(
            f"{configs.directory}: compressed-tensors cannot read its quantization_config "
            f"({type(error).__name__}: {error})"
        ) from None


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
