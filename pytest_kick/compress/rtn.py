"""Round-to-nearest (RTN) weight quantization: the calibration-free baseline of LLM-KICK's quantization
comparison (Jaiswal et al. 2024, "Compressing LLMs: The Truth is Rarely Pure and Never Simple").

What: every weight is rounded to the nearest level of the asymmetric min-max grid of its (row, group)
(see :mod:`pytest_kick.compress.grid`); no data is looked at. Fake quantization: the weights stay in
their float dtype but lie on the grid afterwards.

Hyper-parameters: ``spec.bits`` (2, 3, 4 or 8) and ``spec.group`` (inputs per (scale, zero); None = one
per output row).
"""

from __future__ import annotations

import time

import torch

from pytest_kick.compress import grid


class RTNSolver:
    """Same interface as :class:`pytest_kick.compress.gptq.GPTQSolver`, without calibration."""

    needs_calibration = False

    def __init__(self, linear: torch.nn.Linear):
        self.linear = linear

    def add_batch(self, inp) -> None:
        """Nothing to collect: RTN does not look at the inputs."""

    def apply(self, spec) -> dict:
        started = time.perf_counter()
        weight = self.linear.weight.data
        grid.rtn_(weight, spec.bits, spec.group)
        return {
            "seconds": time.perf_counter() - started,
            "bits": spec.bits,
            "group": spec.group,
            "ragged_last_group": grid.ragged_last_group(weight.shape[1], spec.group),
        }

    def free(self) -> None:
        self.linear = None
