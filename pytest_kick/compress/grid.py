"""The asymmetric min-max quantization grid shared by RTN, GPTQ and AWQ (fake quantization).

What: every (output row, group of ``spec.group`` consecutive inputs) gets its own ``scale`` and integer
``zero``; a weight ``w`` becomes ``scale * (clamp(round(w / scale) + zero, 0, maxq) - zero)`` with
``maxq = 2**bits - 1``. The result is still a float tensor, but every value of a (row, group) lies on
its grid of at most ``2**bits`` levels, which is what a real low-bit kernel would compute with.

Why this grid: it is the one GPTQ (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers", ``quant.py`` of IST-DASLab/gptq) and AWQ (Lin et al. 2023,
``pseudo_quantize_tensor`` of mit-han-lab/llm-awq) evaluate with, so the three methods differ only in
how they choose the weights, not in the grid:
- ``xmin = min(min(group), 0)``, ``xmax = max(max(group), 0)``: the range always holds 0, so 0 is exactly
  representable (``q = zero``) -- as GPTQ's ``Quantizer.find_params``;
- an all-zero group gets the range [-1, 1] (GPTQ's guard against a zero scale);
- ``scale = (xmax - xmin) / maxq``, ``zero = round(-xmin / scale)``.

Groups: ``spec.group = None`` means one (scale, zero) per output row. When the group does not divide
the number of inputs the last group is shorter (SmolLM2's 576 inputs at g128: four groups of 128 and
one of 64); its size is reported as ``ragged_last_group`` (0 when every group is full or per-row).
"""

from __future__ import annotations

import torch


def maxq_of(bits: int) -> int:
    return 2 ** int(bits) - 1


def minmax_params(w: torch.Tensor, maxq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero), each [rows, 1] float32, of the asymmetric min-max grid over the columns of ``w``."""
    w = w.float()
    zeros = torch.zeros(w.shape[0], device=w.device, dtype=w.dtype)
    xmin = torch.minimum(w.min(dim=1).values, zeros)
    xmax = torch.maximum(w.max(dim=1).values, zeros)
    empty = (xmin == 0) & (xmax == 0)
    xmin[empty], xmax[empty] = -1.0, 1.0
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def quantize(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """Round ``w`` onto the grid (scale, zero, maxq) and return the dequantized float32 values."""
    q = torch.clamp(torch.round(w.float() / scale) + zero, 0, maxq)
    return scale * (q - zero)


def group_bounds(in_features: int, group: int | None) -> list[tuple[int, int]]:
    """[(start, stop)] of every group of inputs; the last one is shorter when ``group`` does not divide."""
    if group is None or group >= in_features:
        return [(0, in_features)]
    return [(start, min(start + group, in_features)) for start in range(0, in_features, group)]


def ragged_last_group(in_features: int, group: int | None) -> int:
    """Size of the short last group, 0 when there is none (every group full, or one group per row)."""
    if group is None or group >= in_features:
        return 0
    return in_features % group


def matrix_params(weight: torch.Tensor, bits: int, group: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero), each [rows, n_groups] float32, of every (row, group) of ``weight``."""
    maxq = maxq_of(bits)
    pairs = [minmax_params(weight[:, a:b], maxq) for a, b in group_bounds(weight.shape[1], group)]
    return torch.cat([s for s, _ in pairs], dim=1), torch.cat([z for _, z in pairs], dim=1)


def quantize_matrix(weight: torch.Tensor, bits: int, group: int | None) -> torch.Tensor:
    """Round-to-nearest of a whole [rows, inputs] matrix; float32 dequantized result, ``weight`` untouched."""
    maxq = maxq_of(bits)
    out = torch.empty(weight.shape, dtype=torch.float32, device=weight.device)
    for a, b in group_bounds(weight.shape[1], group):
        scale, zero = minmax_params(weight[:, a:b], maxq)
        out[:, a:b] = quantize(weight[:, a:b], scale, zero, maxq)
    return out


def rtn_(weight: torch.Tensor, bits: int, group: int | None) -> None:
    """Round-to-nearest in place, keeping the dtype of ``weight``."""
    with torch.no_grad():
        weight.copy_(quantize_matrix(weight, bits, group).to(weight.dtype))


def levels_per_group(weight: torch.Tensor, spec) -> torch.Tensor:
    """[rows, n_groups] int64: the number of distinct values in every (row, group) of ``weight``.

    A matrix quantized at ``spec`` (without GPTQ's act-order) has at most ``2**spec.bits`` per entry.
    """
    counts = []
    for a, b in group_bounds(weight.shape[1], spec.group):
        ordered = weight[:, a:b].sort(dim=1).values
        counts.append((ordered[:, 1:] != ordered[:, :-1]).sum(dim=1) + 1)
    return torch.stack(counts, dim=1)


def on_grid(
    weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, group: int | None, atol: float = 1e-3
) -> bool:
    """Whether every value of ``weight`` is ``scale * (q - zero)`` for an integer q in [0, maxq] of its
    (row, group); ``scale``/``zero`` are [rows, n_groups] as from :func:`matrix_params`. ``atol`` is in
    units of grid steps (float32 rounding of ``w / scale`` at 8 bits reaches ~1e-5 steps)."""
    maxq = maxq_of(bits)
    for index, (a, b) in enumerate(group_bounds(weight.shape[1], group)):
        s, z = scale[:, index : index + 1], zero[:, index : index + 1]
        q = weight[:, a:b].float() / s + z
        if not torch.allclose(q, torch.round(q), atol=atol, rtol=0):
            return False
        if q.min() < -atol or q.max() > maxq + atol:
            return False
    return True
