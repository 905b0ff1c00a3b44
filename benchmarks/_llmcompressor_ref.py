"""llmcompressor_compare.py, the reference side: llm-compressor's recipe and ``oneshot`` end to end, and its
own per-matrix functions for the solver level. Every llm-compressor import is inside a function."""

from __future__ import annotations

import contextlib
import copy
import sys
import time

from _llmcompressor_setup import linear_weights


def theirs_recipe(compressor: str, spec_text: str):
    from pytest_kick.compress.spec import parse

    spec = parse(spec_text)
    ignore = ["re:.*lm_head"]
    if compressor in ("wanda", "sparsegpt"):
        structure = f"{spec.n}:{spec.m}" if spec.kind == "nm" else "0:0"
        if compressor == "wanda":
            from llmcompressor.modifiers.pruning import WandaPruningModifier

            return WandaPruningModifier(sparsity=spec.sparsity, mask_structure=structure, ignore=ignore)
        from llmcompressor.modifiers.pruning import SparseGPTModifier

        return SparseGPTModifier(
            sparsity=spec.sparsity,
            mask_structure=structure,
            block_size=128,
            dampening_frac=0.01,
            preserve_sparsity_mask=False,
            ignore=ignore,
        )
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.gptq import GPTQModifier

    weights = QuantizationArgs(
        num_bits=spec.bits,
        type="int",
        symmetric=False,
        strategy="group" if spec.group else "channel",
        group_size=spec.group,
        observer="memoryless_minmax",
    )
    scheme = QuantizationScheme(targets=["Linear"], weights=weights)
    return GPTQModifier(
        config_groups={"kick": scheme},
        ignore=["lm_head"],
        block_size=128,
        dampening_frac=0.01,
        actorder=None,
        bypass_divisibility_checks=True,
    )


def run_theirs(model, tokenizer, compressor: str, spec_text: str, calibration, batch: int) -> tuple[dict, float]:
    from llmcompressor import oneshot
    from torch.utils.data import DataLoader

    work = copy.deepcopy(model)
    loader = DataLoader([{"input_ids": row} for row in calibration], batch_size=batch, shuffle=False)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        oneshot(
            model=work,
            processor=tokenizer,
            dataset=loader,
            recipe=[theirs_recipe(compressor, spec_text)],
            pipeline="sequential",
        )
    seconds = time.perf_counter() - started
    weights = linear_weights(work)
    del work
    return weights, seconds


# --- solver level: one matrix at a time, the same statistics on both sides -------------------------------


def their_solver(compressor: str, spec, module, stats):
    """llm-compressor's own per-matrix function on ``module`` (a copy) with our accumulated statistics."""
    import torch

    if compressor == "wanda":
        from llmcompressor.modifiers.pruning.wanda.wanda_sparsify import sparsify_weight

        return sparsify_weight(module, {module: stats}, spec.sparsity, spec.n or 0, spec.m or 0)
    if compressor == "sparsegpt":
        from llmcompressor.modifiers.pruning.sparsegpt.sgpt_sparsify import sparsify_weight

        return sparsify_weight(module, {module: stats}, spec.sparsity, spec.n or 0, spec.m or 0, 128, 0.01, False)[1]
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.utils import calculate_qparams
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight

    from pytest_kick.compress import grid

    args = QuantizationArgs(
        num_bits=spec.bits,
        type="int",
        symmetric=False,
        actorder=None,
        strategy="group" if spec.group else "channel",
        group_size=spec.group,
    )
    weight = module.weight.detach().float()
    bounds = grid.group_bounds(weight.shape[1], spec.group)  # their observer: min/max of the dense groups
    mins = torch.stack([weight[:, a:b].amin(dim=1) for a, b in bounds], dim=1)
    maxs = torch.stack([weight[:, a:b].amax(dim=1) for a, b in bounds], dim=1)
    scale, zero = calculate_qparams(mins, maxs, args)
    quantized, _, _ = quantize_weight(
        weight[None].clone(), stats[None].clone(), scale[None], zero[None], None, args, 128, 0.01
    )
    return quantized[0]
