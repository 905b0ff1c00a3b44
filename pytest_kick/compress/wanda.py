"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter 2023, "A Simple and Effective
Pruning Approach for Large Language Models", arXiv:2306.11695), one of LLM-KICK's pruners.

The score of weight W_ij is |W_ij| * ||X_j||_2, the weight's magnitude times the L2 norm of its input
feature over the calibration tokens; weights are compared within their output row (unstructured: the
paper's "per output" comparison group) or within each N:M group. No weight update:
kept weights stay bit-identical.

What the solver keeps is the per-input mean of x_j^2 over calibration tokens, in float32 (the paper's
code keeps ``scaler_row`` = sum of squares / number of sequences, locuslab/wanda lib/layerwrapper.py; a
constant factor does not change any comparison within a row). The counting (exact per row and per
matrix, existing zeros first) is :mod:`pytest_kick.compress.masks`.

Usage, one solver per nn.Linear of a decoder block: ``add_batch`` with the layer's input for every
calibration sample (a forward hook), then ``apply(spec)``, then ``free()``.
"""

from __future__ import annotations

import time

import torch

from pytest_kick.compress.base import token_rows
from pytest_kick.compress.masks import check_spec, prune_by_score
from pytest_kick.errors import KickError


class WandaSolver:
    needs_calibration = True

    def __init__(self, linear: torch.nn.Linear):
        self.linear = linear
        self.columns = linear.weight.shape[1]
        self.mean_sq = torch.zeros(self.columns, dtype=torch.float32, device=linear.weight.device)
        self.tokens = 0

    def add_batch(self, inp) -> None:
        """Account for ``inp``, the input of the Linear, shape [..., in_features], any float dtype."""
        with torch.no_grad():
            x = token_rows(inp, self.columns, self.mean_sq.device)
            count = x.shape[0]
            if count == 0:
                return
            total = self.tokens + count
            # running mean over tokens: mean <- mean * old/total + sum(x^2) / total
            self.mean_sq.mul_(self.tokens / total).add_(x.square().sum(dim=0), alpha=1.0 / total)
            self.tokens = total

    def scores(self) -> torch.Tensor:
        """|W_ij| * ||X_j||_2 (up to a constant factor per matrix), float32."""
        weight = self.linear.weight.data
        norms = self.mean_sq.sqrt().to(weight.device)
        return weight.abs().to(torch.float32) * norms.unsqueeze(0)

    def apply(self, spec) -> dict:
        """Prune ``linear.weight`` in place as ``spec`` asks; returns {"seconds", "tokens"}."""
        started = time.perf_counter()
        check_spec(spec, self.columns)
        if self.mean_sq is None:
            raise KickError("Wanda: the solver was freed before apply()")
        if self.tokens == 0:
            raise KickError("Wanda needs calibration data: no input reached this layer before apply()")
        with torch.no_grad():
            prune_by_score(self.linear.weight.data, self.scores(), spec, per_row=True)
        return {"seconds": time.perf_counter() - started, "tokens": self.tokens}

    def free(self) -> None:
        self.mean_sq = None
