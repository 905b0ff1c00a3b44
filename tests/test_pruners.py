"""Mask selection (masks.py) and the calibrated pruners (Wanda, SparseGPT) on single matrices/layers:
exact zero counts, valid N:M groups, dense zeros counted, kept weights untouched (magnitude, Wanda) or
updated (SparseGPT), dtypes kept, and the reconstruction error ordering the papers report."""

import copy

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


def test_sparsegpt_dead_inputs():
    dense = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    dead = (3, 10, 17)
    lin, solver = calibrated(SparseGPTSolver, dense, calibration(32, 2, dead=dead))
    stats = solver.apply(parse("0.5"))
    assert stats["dead_inputs"] == 3
    assert int((lin.weight == 0).sum()) == 128 and bool(torch.isfinite(lin.weight).all())
    assert bool((lin.weight[:, list(dead)] == 0).all())  # pruned first
    # a quota smaller than the dead weights: exact all the same, the dead weights left are untouched
    lin, solver = calibrated(SparseGPTSolver, dense, calibration(32, 2, dead=dead))
    solver.apply(parse("0.05"))
    assert int((lin.weight == 0).sum()) == round(0.05 * 256) == 13
    dead_cols = lin.weight.data[:, list(dead)]
    assert int((dead_cols == 0).sum()) == 13
    assert torch.equal(dead_cols[dead_cols != 0], dense[:, list(dead)][dead_cols != 0])
    # N:M with more dead inputs than n in a group: still exactly n zeros per group
    lin, solver = calibrated(SparseGPTSolver, dense, calibration(32, 2, dead=(0, 1, 2)))
    solver.apply(parse("2:4"))
    check_counts(dense, lin.weight.data, parse("2:4"))


def test_sparsegpt_nm_does_not_depend_on_blocksize():
    """N:M masks are chosen group by group, so the blocked (lazy) update must give the column-by-column result."""
    dense = torch.randn(8, 48, generator=torch.Generator().manual_seed(3))
    x = calibration(48, 3)
    results = []
    for blocksize in (4, 16, 128):
        lin, solver = calibrated(SparseGPTSolver, dense, x)
        solver.apply(parse("2:4"), blocksize=blocksize)
        results.append(lin.weight.data)
    assert torch.equal(results[0] == 0, results[2] == 0) and torch.equal(results[1] == 0, results[2] == 0)
    assert torch.allclose(results[0], results[2], atol=1e-5) and torch.allclose(results[1], results[2], atol=1e-5)


def test_sparsegpt_kept_weights_never_collapse_to_zero_in_float16():
    """Updates of tiny float16 weights round to 0; those kept weights get the smallest subnormal instead."""
    g = torch.Generator().manual_seed(4)
    steps = torch.randn(16, 32, generator=g).sign() * torch.randint(1, 4, (16, 32), generator=g)
    dense = (steps * 2**-24).to(torch.float16)  # 1..3 times the smallest float16 subnormal
    x = calibration(32, 4) @ (torch.eye(32) + torch.randn(32, 32, generator=g) / 4)
    lin, solver = calibrated(SparseGPTSolver, dense, x)
    solver.apply(parse("0.5"))
    assert int((lin.weight == 0).sum()) == 256


def test_calibration_statistics_do_not_depend_on_batching():
    x = calibration(16, 5, tokens=30).to(torch.bfloat16).float()  # exact in bfloat16, fed so below
    lin = torch.nn.Linear(16, 4, bias=False)
    whole_w, whole_s = WandaSolver(lin), SparseGPTSolver(lin)
    whole_w.add_batch(x)
    whole_s.add_batch(x)
    split_w, split_s = WandaSolver(lin), SparseGPTSolver(lin)
    for part in (x[:7], x[7:20].reshape(1, 13, 16), x[20:].to(torch.bfloat16)):
        split_w.add_batch(part)
        split_s.add_batch(part)
    assert torch.allclose(whole_w.mean_sq, split_w.mean_sq, rtol=1e-5)
    assert torch.allclose(whole_w.mean_sq, x.square().mean(0), rtol=1e-5)
    assert torch.allclose(whole_s.H, split_s.H, rtol=1e-4, atol=1e-5)
    assert torch.allclose(whole_s.H, 2 * x.T @ x / 30, rtol=1e-4, atol=1e-5)


def outlier_layer(seed, inputs=128, outputs=64, tokens=512):
    """A layer and calibration inputs with correlated features, four of them outliers (x50), in distinct
    N:M groups (the LLM.int8()/Wanda observation that motivates activation-aware scores)."""
    g = torch.Generator().manual_seed(seed)
    lin = linear_with(torch.randn(outputs, inputs, generator=g) / inputs**0.5)
    mix = torch.eye(inputs) + 0.3 * torch.randn(inputs, inputs, generator=g) / inputs**0.5
    x = torch.randn(tokens, inputs, generator=g) @ mix
    x[:, [5, 38, 71, 102]] *= 50
    return lin, x


def reconstruction_error(pruner, lin, x, spec):
    lin = copy.deepcopy(lin)
    dense = lin.weight.data.clone()
    if pruner == "magnitude":
        magnitude_prune(lin.weight.data, spec)
    else:
        solver = (WandaSolver if pruner == "wanda" else SparseGPTSolver)(lin)
        for part in x.chunk(4):
            solver.add_batch(part.reshape(2, -1, x.shape[1]))
        solver.apply(spec)
    assert int((lin.weight == 0).sum()) == dense.numel() // 2
    return float((x @ dense.T - x @ lin.weight.data.T).norm())


@pytest.mark.parametrize("seed", [0, 1])
def test_reconstruction_error_ordering(seed):
    lin, x = outlier_layer(seed)
    err = {
        (p, s): reconstruction_error(p, lin, x, parse(s))
        for p in ("magnitude", "wanda", "sparsegpt")
        for s in ("0.5", "2:4", "4:8")
    }
    assert err["sparsegpt", "0.5"] < err["wanda", "0.5"] < err["magnitude", "0.5"]
    for pruner in ("magnitude", "wanda", "sparsegpt"):
        assert err[pruner, "4:8"] <= err[pruner, "2:4"]
    assert err["wanda", "0.5"] < 0.5 * err["magnitude", "0.5"]  # outliers: activation-aware by a wide margin


@given(st.integers(1, 9), st.integers(1, 40), st.floats(0.0, 0.99), st.integers(0, 3), st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_unstructured_selection_equals_the_stable_sort_it_replaces(rows, cols, sparsity, levels, seed):
    """kthvalue + ties in index order gives the mask a stable argsort of the whole matrix gave (ties and the
    matrix's own zeros included: few distinct values make many ties)."""
    from pytest_kick.compress.masks import _ranked, select_lowest, select_lowest_flat

    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g)
    if levels:
        weight = torch.round(weight * levels) / levels  # few distinct magnitudes, zeros among them
    ranked = _ranked(weight.abs(), weight).reshape(-1)
    count = round(sparsity * weight.numel())
    by_sort = select_lowest(ranked.reshape(1, -1), torch.tensor([count])).reshape(-1)
    assert torch.equal(select_lowest_flat(ranked, count), by_sort)
    assert int(select_lowest_flat(ranked, count).sum()) == count
