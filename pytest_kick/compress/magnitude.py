"""Magnitude pruning (LLM-KICK's baseline): score |W|, no calibration. Unstructured: the round(ratio x size)
smallest weights of each matrix become zero; N:M: the n smallest of every m consecutive inputs of a row
(counting rules in masks.py; zeros the dense matrix already had count toward the quota)."""

from __future__ import annotations

import time

from pytest_kick.compress.masks import magnitude_prune


class MagnitudeSolver:
    """The solver interface of the pipeline (add_batch, apply), without calibration."""

    needs_calibration = False

    def __init__(self, linear):
        self.linear = linear

    def add_batch(self, inp) -> None:
        """Magnitude pruning does not look at the inputs."""

    def apply(self, spec) -> dict:
        started = time.perf_counter()
        magnitude_prune(self.linear.weight.data, spec)
        return {"seconds": time.perf_counter() - started}
