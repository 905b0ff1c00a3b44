"""SparseGPT: one-shot pruning with an approximate second-order weight update (Frantar & Alistarh 2023,
"SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot", ICML, arXiv:2301.00774), one of
LLM-KICK's pruners.

For one nn.Linear with calibration inputs X, the layer-wise problem is min ||W X - W' X||^2 with W' sparse.
The solver accumulates H = 2/n * sum_t x_t x_t^T (float32, a running average over the n calibration tokens:
the paper's code averages over sequences instead, IST-DASLab/sparsegpt sparsegpt.py; the mask and the
update are invariant to the scale of H, dampening included, since it is relative). ``apply`` then walks the
columns left to right, as the paper's Algorithm 1:

- dead inputs (diag H == 0, never active in calibration) get H_ii = 1; their weights are pruned first
  (see "Exactness" below for the difference with the paper's code, which zeroes them all);
- dampening: ``percdamp`` (1 %) of the mean of diag H is added to the diagonal (the default of the
  paper's code, ``fasterprune(percdamp=.01, blocksize=128)``); if Cholesky still fails (ill-conditioned
  H), it is retried with 10x, 100x, 1000x that, and the value used is reported;
- Hinv = the upper Cholesky factor of H^-1; columns are processed in blocks of ``blocksize`` (128);
- unstructured: the mask of a block is chosen once at the block's start (the paper's adaptive mask
  selection) by the OBS saliency w^2 / [Hinv]_jj^2 over the whole block; N:M: each group of m
  columns (offsets multiple of m) gets its n zeros by the same saliency, chosen when the group is reached
  (so with the updates of the columns before it);
- each column is quantized to its mask (pruned -> 0) and the error (w - q) / [Hinv]_jj is pushed onto the
  remaining columns of the block (OBS update), the rest of the matrix is updated once per block (lazy
  batch update).

Kept weights therefore change (the update is the point of the method); the result is written back in the
weight's original dtype.

Exactness (what :func:`pytest_kick.compress.masks.expected_zeros` returns):

- unstructured, sparsity s: the matrix ends with exactly ``max(round(s * numel), zeros already there)``
  zeros. The paper's code takes, per block, all saliencies <= the ``int(s * block_numel)``-th (one more
  than asked, plus ties); here block b gets ``round(s*rows*c_b) - round(s*rows*c_{b-1})`` zeros (c_b: the
  columns up to the end of block b), so the per-block counts sum to the matrix count exactly; a block
  holding more zeros already than its share pushes the excess off the other blocks' shares.
- N:M: every group of m ends with exactly ``max(n, zeros it already had)`` zeros.
- zeros already in the dense matrix (dequantized GGUF weights) are taken into the mask first and stay
  zero, even where the update of earlier columns would have moved them.
- dead-input weights come next in priority, so they are all zero whenever the quota (of the block, of
  the group) can hold them; beyond the quota they keep their value (they do not change W X on the
  calibration data either way, and zeroing them all as the paper's code does would overshoot the sparsity
  asked and, in N:M, leave groups with more than n zeros).
- a kept weight whose updated value rounds to exactly 0 (in float32, or when cast back to float16/bfloat16)
  is set to the smallest subnormal of its sign instead, so no weight outside the mask is zero.
"""

from __future__ import annotations

import time

import torch

from pytest_kick.compress.base import accumulate_hessian, token_rows
from pytest_kick.compress.masks import check_spec, cumulative_quota, nm_mask, select_lowest, spread
from pytest_kick.errors import KickError

DEAD = -1.0  # rank of a dead-input weight: after the existing zeros (-inf), before any saliency (>= 0)


def _ranked(block, hinv_diag, dead, forced):
    """OBS saliency w^2 / [Hinv]_jj^2 of a slice of columns, the dense zeros and then dead inputs first."""
    score = block.square() / hinv_diag.square().unsqueeze(0)
    score = score.masked_fill(dead.unsqueeze(0), DEAD)
    return score.masked_fill(forced, float("-inf"))


class SparseGPTSolver:
    needs_calibration = True

    def __init__(self, linear: torch.nn.Linear):
        self.linear = linear
        self.columns = linear.weight.shape[1]
        self.H = torch.zeros(self.columns, self.columns, dtype=torch.float32, device=linear.weight.device)
        self.tokens = 0

    def add_batch(self, inp) -> None:
        """Account for ``inp``, the input of the Linear, shape [..., in_features], any float dtype."""
        with torch.no_grad():
            self.tokens = accumulate_hessian(self.H, self.tokens, token_rows(inp, self.columns, self.H.device))

    def _inverse(self, H, percdamp: float):
        """Upper Cholesky factor of (H + damp I)^-1, retrying with more dampening if H is too ill-conditioned."""
        diag = H.diagonal().clone()
        mean = float(diag.mean())
        for factor in (1, 10, 100, 1000):
            damp = percdamp * factor
            H.diagonal().copy_(diag + damp * mean)
            lower, info = torch.linalg.cholesky_ex(H)
            if int(info) == 0:
                upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
                if int(info) == 0 and bool(torch.isfinite(upper).all()):
                    return upper, damp
        raise KickError(
            f"SparseGPT: the Hessian of a {tuple(self.linear.weight.shape)} layer is not positive "
            f"definite even with {1000 * percdamp:g} x mean(diag H) dampening; the calibration "
            f"inputs are degenerate (NaN/inf activations?)"
        )

    def apply(self, spec, blocksize: int = 128, percdamp: float = 0.01) -> dict:
        """Prune ``linear.weight`` in place as ``spec`` asks, updating the kept weights (see the module
        docstring). Consumes the accumulated statistics. Returns {"seconds", "tokens", "dead_inputs",
        "percdamp" (the dampening used), "error" (the OBS estimate of the added squared output error)}."""
        started = time.perf_counter()
        check_spec(spec, self.columns)
        if self.H is None:
            raise KickError("SparseGPT: the solver was freed (or already applied) before apply()")
        if self.tokens == 0:
            raise KickError("SparseGPT needs calibration data: no input reached this layer before apply()")
        weight = self.linear.weight.data
        rows, cols = weight.shape
        existing = weight == 0
        stats = {"tokens": self.tokens, "dead_inputs": 0, "percdamp": percdamp, "error": 0.0}
        if spec.kind == "sparsity" and round(spec.sparsity * weight.numel()) <= int(existing.sum()):
            self.free()  # nothing to add: the dense zeros already meet the quota
            return {"seconds": time.perf_counter() - started, **stats}

        with torch.no_grad():
            H, self.H = self.H, None
            dead = H.diagonal() == 0
            stats["dead_inputs"] = int(dead.sum())
            H.diagonal()[dead] = 1
            Hinv, stats["percdamp"] = self._inverse(H, percdamp)
            del H

            W = weight.to(torch.float32, copy=True)
            mask = torch.zeros(rows, cols, dtype=torch.bool, device=W.device)
            if spec.kind == "nm":
                blocksize = max(spec.m, blocksize - blocksize % spec.m)  # N:M groups never straddle blocks
            bounds = [(i1, min(i1 + blocksize, cols)) for i1 in range(0, cols, blocksize)]
            if spec.kind == "sparsity":
                cum = cumulative_quota(spec.sparsity, rows, cols)
                nominal = torch.stack([cum[i2] - cum[i1] for i1, i2 in bounds])
                have = torch.stack([existing[:, i1:i2].sum() for i1, i2 in bounds]).cpu()
                quotas = spread(round(spec.sparsity * weight.numel()), nominal, have)

            error = torch.zeros((), dtype=torch.float32, device=W.device)
            for b, (i1, i2) in enumerate(bounds):
                W1 = W[:, i1:i2].clone()
                Q1 = torch.zeros_like(W1)
                Err1 = torch.zeros_like(W1)
                Hinv1 = Hinv[i1:i2, i1:i2]
                d1 = Hinv1.diagonal()
                forced1 = existing[:, i1:i2]
                dead1 = dead[i1:i2]

                if spec.kind == "sparsity":
                    chosen = select_lowest(_ranked(W1, d1, dead1, forced1).reshape(1, -1), quotas[b : b + 1])
                    mask1 = chosen.reshape(W1.shape) | forced1
                else:
                    mask1 = torch.zeros_like(forced1)

                for i in range(i2 - i1):
                    if spec.kind == "nm" and i % spec.m == 0:
                        group = slice(i, i + spec.m)
                        score = _ranked(W1[:, group], d1[group], dead1[group], forced1[:, group])
                        mask1[:, group] = nm_mask(score, spec.n, spec.m) | forced1[:, group]
                    w = W1[:, i]
                    d = Hinv1[i, i]
                    q = w.masked_fill(mask1[:, i], 0)
                    Q1[:, i] = q
                    err = (w - q) / d
                    error += err.square().sum() / 2
                    W1[:, i:].addr_(err, Hinv1[i, i:], alpha=-1)  # OBS update of the block's remaining columns
                    Err1[:, i] = err

                W[:, i1:i2] = Q1
                mask[:, i1:i2] = mask1
                W[:, i2:].addmm_(Err1, Hinv[i1:i2, i2:], alpha=-1)  # lazy update of the columns after the block

            if not bool(torch.isfinite(W).all()):
                raise KickError(
                    f"SparseGPT produced non-finite weights in a {tuple(weight.shape)} layer "
                    f"(non-finite dense weights or calibration activations?)"
                )
            out = W.to(weight.dtype)
            lost = out.eq(0) & ~mask  # kept weights that the update (or the cast) brought to exactly zero
            if bool(lost.any()):
                info = torch.finfo(weight.dtype)
                tiny = torch.tensor(info.tiny * info.eps, dtype=weight.dtype, device=out.device)
                out[lost] = torch.where(W[lost] < 0, -tiny, tiny)
            weight.copy_(out)
            stats["error"] = float(error)
        return {"seconds": time.perf_counter() - started, **stats}

    def free(self) -> None:
        self.H = None
