"""GPTQ weight quantization (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", ICLR 2023), one ``nn.Linear`` at a time.

What: the columns (inputs) of the weight are quantized one after the other; after each column the
rounding error is spread over the not-yet-quantized columns using the inverse Hessian of the layer's
reconstruction loss ``||W X - W' X||^2``, whose Hessian is ``H = 2 X X^T`` over the calibration inputs.
Why: with the same grid as round-to-nearest (:mod:`pytest_kick.compress.grid`), the layer output on
calibration data is reconstructed much better, above all at 3-4 bits.

The procedure and hyper-parameters are those of the reference implementation (IST-DASLab/gptq,
``gptq.py``, ``GPTQ.add_batch`` / ``GPTQ.fasterquant``), rewritten here:
- ``H`` is a float32 running average, ``H = 2/n sum_x x x^T``. Unlike the reference, ``n`` counts token
  rows rather than sequences; H's scale does not change the result (dampening is relative to it).
- dead inputs (``H[i, i] == 0``: never active in calibration) get ``H[i, i] = 1`` and their weights are
  set to 0, as in the reference;
- dampening ``percdamp = 0.01`` x mean(diag H) added to the diagonal. If the Cholesky factorisation still
  fails, the dampening is multiplied by 10 and retried (at most 5 times; the reference just fails), the
  dampening used is reported;
- ``Hinv`` = upper Cholesky factor of ``H^-1`` (``cholesky`` -> ``cholesky_inverse`` -> ``cholesky(upper)``);
- lazy batch updates over blocks of ``blocksize = 128`` columns;
- groups (``spec.group``): the (scale, zero) of a group is computed when its first column is reached,
  from the already error-updated weights of the whole group. To make that exact, the block size is
  aligned to the group (``group`` when group >= blocksize, else the largest multiple of group <= blocksize),
  so a group never straddles two blocks. The reference computes the params from ``W`` that still misses
  the current block's pending updates when a group starts mid-block; with the default g128/b128 both agree.
  The ragged last group (576 inputs at g128: 4 x 128 + 64) is simply a shorter group. Per-row (group
  None): one (scale, zero) per row from the initial weights, as the reference;
- ``act_order`` (off by default, LLM-KICK's GPTQ runs used the reference defaults): columns are processed
  by decreasing ``H[i, i]``. Groups then follow the *permuted* order (the reference's
  ``static_groups=False`` behaviour): a group is 128 consecutive columns of the permuted order, so in the
  original column order a (row, group-of-128) can hold more than ``2**bits`` levels; the grid is reported
  per permuted group (``self.scale``, ``self.zero``, ``self.perm``).

The weight is written back in place (fake quantization) in its original dtype.
"""

from __future__ import annotations

import time

import torch

from pytest_kick.compress import grid
from pytest_kick.compress.base import accumulate_hessian, token_rows
from pytest_kick.errors import KickError


class GPTQSolver:
    needs_calibration = True

    def __init__(self, linear: torch.nn.Linear):
        self.linear = linear
        self.columns = linear.weight.shape[1]
        self.H = None
        self.nsamples = 0
        self.scale = self.zero = self.perm = None  # grid used by the last apply (processing order)

    def add_batch(self, inp) -> None:
        """Accumulate ``H`` from one input of the linear, [..., in_features] (e.g. [batch, seq, hidden])."""
        x = token_rows(inp, self.columns, inp.device if self.H is None else self.H.device)
        if x.shape[0] == 0:
            return
        if self.H is None:
            self.H = torch.zeros(self.columns, self.columns, dtype=torch.float32, device=x.device)
        with torch.no_grad():
            self.nsamples = accumulate_hessian(self.H, self.nsamples, x)

    def _inverse_factor(self, H: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, float]:
        diag = torch.arange(H.shape[0], device=H.device)
        damp = percdamp * torch.mean(torch.diag(H)).item()
        for _ in range(6):
            trial = H.clone()
            trial[diag, diag] += damp
            L, info = torch.linalg.cholesky_ex(trial)
            if int(info) == 0:
                inverse = torch.cholesky_inverse(L)
                U, info = torch.linalg.cholesky_ex(inverse, upper=True)
                if int(info) == 0:
                    return U, damp
            damp *= 10
        raise KickError(
            f"GPTQ: the Hessian of a {tuple(self.linear.weight.shape)} linear is not positive "
            f"definite even with dampening {damp / 10:g}"
        )

    def apply(self, spec, blocksize: int = 128, percdamp: float = 0.01, act_order: bool = False) -> dict:
        """Quantize the linear's weight in place; the stats of the run."""
        threads = torch.get_num_threads()
        if self.H is not None and self.H.device.type == "cpu":
            # the column loop is thousands of tiny ops: intra-op threads only add synchronisation, which on
            # a busy CPU costs 10-30x; the few large ops (Cholesky, block updates) barely miss them
            torch.set_num_threads(1)
        try:
            return self._apply(spec, blocksize, percdamp, act_order)
        finally:
            torch.set_num_threads(threads)

    def _apply(self, spec, blocksize: int, percdamp: float, act_order: bool) -> dict:
        started = time.perf_counter()
        if self.H is None:
            raise KickError("GPTQ: apply() before any add_batch(); the layer saw no calibration input")
        weight = self.linear.weight
        W = weight.data.detach().to(dtype=self.H.dtype, device=self.H.device, copy=True)
        rows, columns = W.shape
        maxq = grid.maxq_of(spec.bits)
        group = spec.group if spec.group is not None and spec.group < columns else None

        H = self.H.clone()
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0

        perm = None
        if act_order:
            perm = torch.argsort(torch.diag(H), descending=True)
            W, H = W[:, perm], H[perm][:, perm]

        Hinv, damp = self._inverse_factor(H, percdamp)
        del H

        scale = zero = None
        if group is None:
            block = blocksize
            scale, zero = grid.minmax_params(W, maxq)
            scales, zeros = [scale], [zero]
        else:
            block = group if group >= blocksize else group * (blocksize // group)
            scales, zeros = [], []

        Q = torch.zeros_like(W)
        loss = 0.0
        for i1 in range(0, columns, block):
            i2 = min(i1 + block, columns)
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            for i in range(i2 - i1):
                if group is not None and (i1 + i) % group == 0:
                    # a group starts: its grid from the up-to-date weights (block is group-aligned)
                    scale, zero = grid.minmax_params(W1[:, i : i + group], maxq)
                    scales.append(scale)
                    zeros.append(zero)
                w = W1[:, i]
                d = Hinv1[i, i]
                q = grid.quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
                Q1[:, i] = q
                err = (w - q) / d
                loss = loss + ((w - q) ** 2).sum() / d**2 / 2  # the reference's Losses
                W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
                Err1[:, i] = err
            Q[:, i1:i2] = Q1
            W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]

        if perm is not None:
            Q = Q[:, torch.argsort(perm)]
        with torch.no_grad():
            weight.data.copy_(Q.to(device=weight.device, dtype=weight.dtype))
        self.scale, self.zero, self.perm = torch.cat(scales, dim=1), torch.cat(zeros, dim=1), perm
        return {
            "seconds": time.perf_counter() - started,
            "bits": spec.bits,
            "group": spec.group,
            "ragged_last_group": grid.ragged_last_group(columns, spec.group),
            "act_order": act_order,
            "nsamples": self.nsamples,
            "dead_inputs": int(dead.sum()),
            "damp": damp,
            "blocksize": block,
            "loss": float(loss),
        }

    def free(self) -> None:
        self.H = None
        self.linear = None
