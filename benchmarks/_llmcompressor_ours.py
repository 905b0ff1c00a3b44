"""llmcompressor_compare.py, our side: our pipeline on a copy of the model, and the ``aligned`` variant
(our solver with llm-compressor's deliberate choices swapped in for the duration of a run)."""

from __future__ import annotations

import contextlib
import copy
import time

from _llmcompressor_setup import linear_weights


@contextlib.contextmanager
def aligned(compressor: str, spec, blocksize: int = 128):
    """Our solver with llm-compressor's deliberate choice swapped in, to isolate the algorithm itself.

    SparseGPT unstructured: per block of ``blocksize`` columns, ``int(s * block_numel) + 1`` zeros (their
    ``tmp <= sort(tmp)[int(numel * s)]``) instead of our exact ``round(s * numel)`` split over the blocks.
    GPTQ grouped: the (scale, zero) of every group from the dense weights before any GPTQ update (their
    observer runs once, before ``quantize_weight``) instead of from the updated weights when the group starts.
    """
    import torch

    from pytest_kick.compress import gptq as gptq_module
    from pytest_kick.compress import grid, pipeline
    from pytest_kick.compress import sparsegpt as sparsegpt_module

    if compressor == "sparsegpt":
        saved = sparsegpt_module.cumulative_quota, sparsegpt_module.spread, pipeline.check_sparsity

        def cumulative_quota(ratio, unit, parts, device=None):
            def per_block(width):
                return int(unit * width * ratio) + 1 if width else 0

            return torch.tensor(
                [(k // blocksize) * per_block(blocksize) + per_block(k % blocksize) for k in range(parts + 1)],
                dtype=torch.int64,
            )

        sparsegpt_module.cumulative_quota = cumulative_quota
        sparsegpt_module.spread = lambda target, nominal, existing: torch.maximum(nominal, existing.to(nominal))
        pipeline.check_sparsity = lambda report, expected: None  # the count is theirs now, not round(s * numel)
        try:
            yield
        finally:
            sparsegpt_module.cumulative_quota, sparsegpt_module.spread, pipeline.check_sparsity = saved
    elif compressor == "gptq":
        import types

        proxy = types.SimpleNamespace(**{k: getattr(grid, k) for k in dir(grid) if not k.startswith("__")})
        original_apply = gptq_module.GPTQSolver.apply

        def apply(self, spec, *args, **kwargs):
            weight = self.linear.weight.detach().float()
            cols = weight.shape[1]
            group = spec.group if spec.group is not None and spec.group < cols else None
            maxq = grid.maxq_of(spec.bits)
            static = iter([grid.minmax_params(weight[:, a:b], maxq) for a, b in grid.group_bounds(cols, group)])
            proxy.minmax_params = lambda w, maxq: next(static)
            return original_apply(self, spec, *args, **kwargs)

        gptq_module.grid, gptq_module.GPTQSolver.apply = proxy, apply
        try:
            yield
        finally:
            gptq_module.grid, gptq_module.GPTQSolver.apply = grid, original_apply
    else:
        yield


def run_ours(model, compressor: str, spec_text: str, calibration, variant: str) -> tuple[dict, float]:
    from pytest_kick.compress import pipeline
    from pytest_kick.compress.base import DenseWeights
    from pytest_kick.compress.spec import parse

    spec = parse(spec_text)
    work = copy.deepcopy(model)
    started = time.perf_counter()
    with aligned(compressor, spec) if variant == "aligned" else contextlib.nullcontext():
        pipeline.compress(work, compressor, spec, DenseWeights(work), calibration)
    seconds = time.perf_counter() - started
    weights = linear_weights(work)
    del work
    return weights, seconds
