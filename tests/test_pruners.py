"""Mask selection (masks.py) and the calibrated pruners (Wanda, SparseGPT) on single matrices/layers:
exact zero counts, valid N:M groups, dense zeros counted, kept weights untouched (magnitude, Wanda) or
updated (SparseGPT), dtypes kept, and the reconstruction error ordering the papers report."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.compress.masks import expected_zeros, magnitude_prune, mask_by_score, prune_by_score, spread
from pytest_kick.compress.sparsegpt import SparseGPTSolver
from pytest_kick.compress.spec import parse
from pytest_kick.compress.wanda import WandaSolver
from pytest_kick.errors import KickError

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


FAST = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def cases(draw, max_rows=12, max_groups=10):
    """(dense weight, spec, seed): a random matrix, maybe with exact zeros already, and a pruning spec that fits."""
    if draw(st.booleans()):
        n, m = draw(st.sampled_from([(2, 4), (4, 8), (1, 4), (3, 4), (1, 2)]))
        spec = parse(f"{n}:{m}")
        cols = m * draw(st.integers(1, max_groups))
    else:
        spec = parse(str(draw(st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9]))))
        cols = draw(st.integers(1, 40))
    rows = draw(st.integers(1, max_rows))
    seed = draw(st.integers(0, 2**16))
    dtype = draw(st.sampled_from(DTYPES))
    zero_share = draw(st.sampled_from([0.0, 0.0, 0.1, 0.4]))
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g)
    weight[torch.rand(rows, cols, generator=g) < zero_share] = 0
    return weight.to(dtype), spec, seed


def calibration(cols, seed, tokens=64, dead=()):
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(tokens, cols, generator=g) * (1 + 3 * torch.rand(cols, generator=g))
    x[:, list(dead)] = 0
    return x


def linear_with(weight):
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return lin


def calibrated(solver_cls, weight, x, chunks=2):
    lin = linear_with(weight)
    solver = solver_cls(lin)
    for part in x.to(weight.dtype).chunk(chunks):
        solver.add_batch(part.unsqueeze(0))  # [batch, seq, in], as a forward hook sees it
    return lin, solver


def check_counts(dense, pruned, spec):
    """Exactly the zeros expected, every dense zero still zero, N:M groups valid."""
    assert pruned.dtype == dense.dtype
    assert int((pruned == 0).sum()) == expected_zeros(dense, spec)
    assert bool((pruned[dense == 0] == 0).all())
    if spec.kind == "nm":
        rows, cols = dense.shape
        before = (dense == 0).reshape(rows, cols // spec.m, spec.m).sum(-1)
        after = (pruned == 0).reshape(rows, cols // spec.m, spec.m).sum(-1)
        assert torch.equal(after, torch.clamp(before, min=spec.n))
    else:
        assert int((pruned == 0).sum()) >= round(spec.sparsity * dense.numel())


@FAST
@given(cases())
def test_magnitude_exact_and_kept_bit_identical(case):
    dense, spec, _ = case
    weight = dense.clone()
    magnitude_prune(weight, spec)
    check_counts(dense, weight, spec)
    kept = weight != 0
    assert torch.equal(weight[kept], dense[kept])
    if spec.kind == "sparsity" and kept.any() and (~kept).any():  # globally the smallest magnitudes went
        assert dense[~kept].abs().max() <= dense[kept].abs().min()


@FAST
@given(cases())
def test_wanda_exact_per_row_and_kept_bit_identical(case):
    dense, spec, seed = case
    rows, cols = dense.shape
    lin, solver = calibrated(WandaSolver, dense, calibration(cols, seed))
    score = solver.scores()
    stats = solver.apply(spec)
    pruned = lin.weight.data
    check_counts(dense, pruned, spec)
    assert stats["seconds"] >= 0
    kept = pruned != 0
    assert torch.equal(pruned[kept], dense[kept])
    if spec.kind == "sparsity":
        per_row = (pruned == 0).sum(1)
        if not (dense == 0).any():  # each row floor or ceil of s * in, the matrix exactly round(s * numel)
            lo, hi = int(spec.sparsity * cols), -(-spec.sparsity * cols // 1)
            assert bool(((per_row >= lo) & (per_row <= hi)).all())
        for r in range(rows):  # compared within the row: pruned scores never above kept ones
            new = (pruned[r] == 0) & (dense[r] != 0)
            if new.any() and kept[r].any():
                assert score[r][new].max() <= score[r][kept[r]].min()


@FAST
@given(cases(max_rows=8, max_groups=6))
def test_sparsegpt_exact_and_updates_kept_weights(case):
    dense, spec, seed = case
    rows, cols = dense.shape
    lin, solver = calibrated(SparseGPTSolver, dense, calibration(cols, seed))
    stats = solver.apply(spec, blocksize=16)
    pruned = lin.weight.data
    check_counts(dense, pruned, spec)
    assert bool(torch.isfinite(pruned.float()).all())
    assert stats["dead_inputs"] == 0 and stats["seconds"] >= 0
    if dense.dtype == torch.float32:
        # OBS: a kept weight right of a newly pruned one in its row moves
        for r in range(rows):
            new = ((pruned[r] == 0) & (dense[r] != 0)).nonzero()
            if len(new):
                right = torch.arange(cols) > new[0, 0]
                kept = right & (pruned[r] != 0)
                assert bool((pruned[r][kept] != dense[r][kept]).all())


def test_sparsegpt_changes_kept_weights_in_low_precision():
    for dtype in DTYPES:
        dense = torch.randn(16, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
        lin, solver = calibrated(SparseGPTSolver, dense, calibration(64, 0))
        solver.apply(parse("0.5"))
        kept = lin.weight.data != 0
        assert lin.weight.dtype == dtype
        assert int((lin.weight.data == 0).sum()) == 512
        assert (lin.weight.data[kept] != dense[kept]).float().mean() > 0.8


def test_prune_by_score_per_row_spreads_floor_and_ceil():
    weight = torch.randn(10, 576, generator=torch.Generator().manual_seed(1))
    prune_by_score(weight, weight.abs(), parse("0.1"), per_row=True)
    per_row = (weight == 0).sum(1)
    assert int(per_row.sum()) == round(0.1 * 5760) == 576
    assert set(per_row.tolist()) <= {57, 58}


def test_spread_pushes_excess_off_other_parts():
    counts = spread(10, torch.tensor([2, 2, 3, 3]), torch.tensor([5, 0, 0, 1]))
    assert int(counts.sum()) == 10 and int(counts[0]) == 5 and bool((counts >= torch.tensor([5, 0, 0, 1])).all())
    assert torch.equal(spread(3, torch.tensor([1, 1, 1]), torch.tensor([2, 2, 2])), torch.tensor([2, 2, 2]))


def test_ties_are_broken_by_position():
    weight = torch.ones(2, 8)
    mask = mask_by_score(weight, torch.ones(2, 8), parse("2:4"), per_row=False)
    assert mask.tolist() == [[True, True, False, False] * 2] * 2
    mask = mask_by_score(weight, torch.ones(2, 8), parse("0.25"), per_row=False)
    assert mask.flatten().nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_in_features_not_multiple_of_m_is_a_clear_error():
    dense = torch.randn(4, 10)
    with pytest.raises(KickError, match="groups of 4.*10 inputs"):
        magnitude_prune(dense.clone(), parse("2:4"))
    for solver_cls in (WandaSolver, SparseGPTSolver):
        _, solver = calibrated(solver_cls, dense, calibration(10, 0))
        with pytest.raises(KickError, match="groups of 8"):
            solver.apply(parse("4:8"))


def test_solvers_refuse_quantization_specs_and_missing_calibration():
    for solver_cls in (WandaSolver, SparseGPTSolver):
        assert solver_cls.needs_calibration is True
        solver = solver_cls(torch.nn.Linear(8, 4, bias=False))
        with pytest.raises(KickError, match="calibration"):
            solver.apply(parse("0.5"))
        solver.add_batch(torch.randn(3, 8))
        with pytest.raises(KickError, match="quantization"):
            solver.apply(parse("w4g128"))
