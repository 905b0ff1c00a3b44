"""The shared compression pipeline: one decoder block at a time, on calibration activations.

For a calibrated compressor (Wanda, SparseGPT, GPTQ, AWQ), as in the SparseGPT / Wanda / GPTQ code:
1. the inputs of the first decoder block are captured once, for every calibration sequence (the model
   runs up to that block and stops), together with the keyword arguments each block is called with
   (position embeddings, attention masks: Gemma's sliding and global layers get different ones);
2. blocks are processed in order: one solver per linear layer is fed that layer's inputs while the
   block runs on the captured activations, then each solver changes its weights;
3. the block runs again, compressed, and its outputs become the next block's inputs, so every block is
   calibrated on what the compressed model before it actually produces.
Calibration-free compressors (magnitude, RTN) go through the matrices directly. How a solver is called is
its registry entry's ``scope`` (extensions.CompressorEntry): per linear layer, per block (AWQ), once on
all the linears (int8 replaces them), or ``load`` (a checkpoint: the solver puts the weights in itself).
Every parameter a compressor changes is announced to ``DenseWeights`` first, so the dense model comes back
by copying only those.

Seconds are kept per phase: ``forward`` (calibration passes through blocks) and ``solver`` (computing the
new weights), so benchmarks can show which dominates.
"""

from __future__ import annotations

import time

from pytest_kick import extensions
from pytest_kick.compress import SCOPES, info
from pytest_kick.compress.base import (
    CompressionReport,
    check_bits,
    check_sparsity,
    compressible_linears,
    decoder_layers,
)
from pytest_kick.compress.spec import Spec
from pytest_kick.errors import KickError

CALIBRATION_BATCH = 8  # sequences per block forward


class _Stop(Exception):
    """Raised inside the first block's pre-hook: the rest of the model need not run."""


def _block_output(result):
    return result[0] if isinstance(result, (tuple, list)) else result


def _linears_by_block(model) -> list[dict]:
    """Per decoder block, {name relative to the block: (qualified name, nn.Linear)}."""
    layers = decoder_layers(model)
    found = [dict() for _ in layers]
    prefix = next(name for name, module in model.named_modules() if module is layers)
    for qualified, module in compressible_linears(model).items():
        index, relative = qualified[len(prefix) + 1 :].split(".", 1)
        found[int(index)][relative] = (qualified, module)
    return found


def capture(model, ids, batch: int = CALIBRATION_BATCH):
    """(inputs, kwargs): the first block's input hidden states per calibration batch, and the keyword
    arguments every block is called with (per block index), from one full pass of the first batch."""
    import torch

    layers = decoder_layers(model)
    device = next(model.parameters()).device
    batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]
    if len(batches) > 1 and len(batches[-1]) != len(batches[0]):
        raise KickError(f"{len(ids)} calibration samples do not split into batches of {batch}")
    kwargs: dict = {}
    inputs = []

    def record_kwargs(index):
        def hook(module, args, kw):
            if index not in kwargs:
                kwargs[index] = {k: v for k, v in kw.items() if k != "hidden_states"}

        return hook

    def record_input(module, args, kw):
        inputs.append((args[0] if args else kw["hidden_states"]).detach())
        raise _Stop

    handles = [layer.register_forward_pre_hook(record_kwargs(k), with_kwargs=True) for k, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            # only the blocks' kwargs are wanted: logits for one position, not [batch, seq, vocab]
            model(input_ids=batches[0].to(device), use_cache=False, logits_to_keep=1)
    finally:
        for h in handles:
            h.remove()
    for k in kwargs:
        kwargs[k].pop("past_key_values", None)
        kwargs[k].pop("past_key_value", None)
        kwargs[k]["use_cache"] = False
    handle = layers[0].register_forward_pre_hook(record_input, with_kwargs=True)
    try:
        with torch.inference_mode():
            for b in batches:
                try:
                    model(input_ids=b.to(device), use_cache=False)
                except _Stop:
                    pass
    finally:
        handle.remove()
    return inputs, kwargs


def compress(
    model, compressor: str, spec: Spec, dense, calibration=None, progress=None, source=None
) -> CompressionReport:
    """Compress ``model`` in place; ``dense`` (a DenseWeights) is told of every parameter before it changes.

    ``calibration``: a LongTensor [samples, seqlen] for calibrated compressors. ``progress(done, total)`` is
    called after each block. ``source``: what a ``load`` compressor reads (--kick-compressed DIR).
    """
    meta = info(compressor)
    if not meta.accepts(spec):
        raise KickError(
            f"{compressor} does not take {spec.text} ({meta.what}); it takes e.g. {', '.join(meta.defaults)}"
        )
    solver = _solver(meta)
    if meta.scope == "load":  # the solver is the whole compression: it reports what it put in
        return solver(model, source, dense)
    started = time.perf_counter()
    blocks = _linears_by_block(model)
    stats = {"forward_seconds": 0.0, "solver_seconds": 0.0, "per_layer_seconds": []}
    expected = {}
    if spec.is_pruning:  # the zero count each matrix must end with, from its dense values (masks.py)
        from pytest_kick.compress.masks import expected_zeros  # lazy: imports torch

        expected = {q: expected_zeros(m.weight, spec) for block in blocks for q, m in block.values()}
    undo = None
    if meta.scope == "linears":
        undo = _replace(solver, model, blocks, stats)
    elif meta.calibrated:
        if calibration is None:
            raise KickError(f"{compressor} needs calibration sequences")
        _calibrated(model, meta, solver, spec, blocks, calibration, dense, stats, progress)
    else:
        _direct(solver, spec, blocks, dense, stats, progress)
    stats["seconds"] = time.perf_counter() - started
    return _report(compressor, meta.scope, spec, blocks, expected, stats, undo)


def _solver(meta):
    if meta.scope not in SCOPES:
        raise KickError(f"compressor {meta.name}: scope {meta.scope!r} is not one of {', '.join(SCOPES)}")
    return extensions.resolve(meta.solver, f"compressor {meta.name}'s solver")


def _direct(Solver, spec, blocks, dense, stats, progress):
    for index, block in enumerate(blocks):
        t = time.perf_counter()
        for qualified, module in block.values():
            dense.remember([qualified + ".weight"])
            _note(stats, Solver(module).apply(spec))
        stats["solver_seconds"] += time.perf_counter() - t
        stats["per_layer_seconds"].append(time.perf_counter() - t)
        if progress:
            progress(index + 1, len(blocks))


def _calibrated(model, meta, solver, spec, blocks, calibration, dense, stats, progress):
    import torch

    layers = decoder_layers(model)
    t = time.perf_counter()
    inputs, kwargs = capture(model, calibration)
    stats["capture_seconds"] = time.perf_counter() - t
    stats["calibration"] = list(calibration.shape)
    for index, layer in enumerate(layers):
        layer_started = time.perf_counter()
        kw = kwargs[index]

        def forward(hidden, layer=layer, kw=kw):
            return _block_output(layer(hidden, **kw))

        if meta.scope == "block":  # e.g. AWQ: scales folded into norms and earlier linears, then quantized
            dense.remember(_block_parameters(layer, _block_prefix(blocks[index])))
            t = time.perf_counter()
            _note(stats, solver(layer, inputs, forward, spec))
            stats["solver_seconds"] += time.perf_counter() - t
        else:
            solvers = {rel: solver(module) for rel, (_, module) in blocks[index].items()}
            handles = [
                module.register_forward_hook(_feeder(solvers[rel])) for rel, (_, module) in blocks[index].items()
            ]
            t = time.perf_counter()
            try:
                with torch.no_grad():
                    for hidden in inputs:
                        forward(hidden)
            finally:
                for h in handles:
                    h.remove()
            stats["forward_seconds"] += time.perf_counter() - t
            t = time.perf_counter()
            for rel, one in solvers.items():
                dense.remember([blocks[index][rel][0] + ".weight"])
                _note(stats, one.apply(spec))
                getattr(one, "free", lambda: None)()
            stats["solver_seconds"] += time.perf_counter() - t
        t = time.perf_counter()
        with torch.inference_mode():  # the compressed block's outputs feed the next block, in place:
            for k, hidden in enumerate(inputs):  # one batch of activations alive at a time, not two lists
                inputs[k] = forward(hidden)
        stats["forward_seconds"] += time.perf_counter() - t
        stats["per_layer_seconds"].append(time.perf_counter() - layer_started)
        if progress:
            progress(index + 1, len(layers))


def _feeder(solver):
    def hook(module, args, output):
        solver.add_batch(args[0].detach())

    return hook


def _block_prefix(block: dict) -> str:
    """``model.layers.3`` from ``{"self_attn.q_proj": ("model.layers.3.self_attn.q_proj", ...)}``."""
    relative, (qualified, _) = next(iter(block.items()))
    return qualified[: -len(relative) - 1]


def _block_parameters(layer, prefix: str) -> list[str]:
    """Every parameter of a block: a block solver (AWQ) folds scales into norms and earlier linears as well as
    quantizing."""
    return [f"{prefix}.{name}" for name, _ in layer.named_parameters()]


def _replace(solver, model, blocks, stats):
    """A ``linears`` solver (int8) swaps every linear for its own module; it returns the undo."""
    t = time.perf_counter()
    linears = {q: m for block in blocks for q, m in block.values()}
    undo = solver(linears, model)
    stats["solver_seconds"] += time.perf_counter() - t
    return undo


def _note(stats: dict, solver_stats: dict | None) -> None:
    """Keep what solvers report that a person reads: ragged last groups, alphas, outlier shares."""
    for key, value in (solver_stats or {}).items():
        if key == "ragged_last_group" and value:
            found = stats.setdefault("ragged_last_group", set())
            found.update(v for v in (value.values() if isinstance(value, dict) else [value]) if v)


def _zeros(weight) -> int:
    return int((weight == 0).sum().item())


def _report(compressor, scope, spec, blocks, expected_zeros, stats, undo) -> CompressionReport:
    per_layer, zeros, total, expected, levels = {}, 0, 0, {}, {}
    for block in blocks:
        for qualified, module in block.values():
            weight = getattr(module, "weight", None)
            if weight is None or scope == "linears":  # replaced modules (int8): the dense weights stay in place
                continue
            z, size = _zeros(weight), weight.numel()
            per_layer[qualified] = z / size
            zeros, total = zeros + z, total + size
            if spec.is_pruning:
                expected[qualified] = (z, expected_zeros[qualified], size)
            elif spec.kind == "quant":
                from pytest_kick.compress.grid import levels_per_group  # lazy: imports torch

                levels[qualified] = int(levels_per_group(weight, spec).max().item())
    if "ragged_last_group" in stats:
        stats["ragged_last_group"] = sorted(stats["ragged_last_group"])
    per_layer_seconds = stats.get("per_layer_seconds", [])
    report = CompressionReport(
        compressor, spec.text, zeros / total if total else 0.0, per_layer, stats.pop("seconds"), stats=stats, undo=undo
    )
    if per_layer_seconds:
        stats["seconds_per_layer"] = sum(per_layer_seconds) / len(per_layer_seconds)
    if spec.is_pruning:
        check_sparsity(report, expected)
    elif spec.kind == "quant" and levels:
        check_bits(report, levels, spec.bits)
        report.bits = max(1, max(levels.values()) - 1).bit_length()
    elif scope == "linears" and spec.kind == "quant":
        report.bits = spec.bits
    return report
