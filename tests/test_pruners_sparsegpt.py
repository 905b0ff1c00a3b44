"""Pruners: SparseGPT's dead inputs, block size and float16, calibration statistics, the reconstruction error
ordering of the pruners, and the unstructured selection. Helpers are in test_pruners.py."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pruners import calibrated, calibration, check_counts, linear_with

from pytest_kick.compress.masks import magnitude_prune
from pytest_kick.compress.sparsegpt import SparseGPTSolver
from pytest_kick.compress.spec import parse
from pytest_kick.compress.wanda import WandaSolver


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
