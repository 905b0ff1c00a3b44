"""Magnitude pruning (LLM-KICK's baseline): in every weight matrix, zero the ratio x size weights of
smallest absolute value. Exactly round(ratio x size) weights per matrix are zero afterwards (existing
zeros are the smallest magnitudes, so they count toward the quota)."""

from __future__ import annotations

import time

from pytest_kick.compress.base import CompressionReport, check_achieved, compressible_linears, sparsity


def prune_matrix(weight, ratio: float) -> None:
    """Zero the round(ratio x numel) smallest-magnitude entries of ``weight`` in place."""
    import torch

    count = int(round(ratio * weight.numel()))
    if count == 0:
        return
    with torch.no_grad():
        flat = weight.view(-1)
        smallest = torch.argsort(flat.abs(), stable=True)[:count]
        flat[smallest] = 0


def compress(model, ratio: float, seed: int = 0) -> CompressionReport:
    started = time.perf_counter()
    linears = compressible_linears(model)
    per_layer, before = {}, {}
    zeros = total = 0
    for name, module in linears.items():
        before[name] = sparsity(module.weight.data)
        prune_matrix(module.weight.data, ratio)
        per_layer[name] = sparsity(module.weight.data)
        zeros += round(per_layer[name] * module.weight.numel())
        total += module.weight.numel()
    report = CompressionReport("magnitude", ratio, zeros / total, per_layer, time.perf_counter() - started)
    check_achieved(report, {name: m.weight.numel() for name, m in linears.items()}, before)
    return report
