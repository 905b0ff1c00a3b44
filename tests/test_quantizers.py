"""Weight quantizers: the min-max grid, RTN, GPTQ and LLM.int8(). AWQ is in test_quantizers_awq.py."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.compress import grid
from pytest_kick.compress.gptq import GPTQSolver
from pytest_kick.compress.int8 import Int8Linear, replace_linears
from pytest_kick.compress.rtn import RTNSolver
from pytest_kick.compress.spec import parse

pytestmark = pytest.mark.usefixtures("one_thread")


SPECS = st.sampled_from(["w2", "w3", "w4", "w8", "w2g16", "w3g32", "w4g128", "w4g64", "w8g128", "w4g7"])


def _linear(rows, cols, seed, dtype=torch.float32, bias=False):
    generator = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(cols, rows, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(rows, cols, generator=generator) * 0.05)
        if bias:
            linear.bias.copy_(torch.randn(rows, generator=generator) * 0.1)
    return linear.to(dtype)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(1, 300), text=SPECS, seed=st.integers(0, 10_000))
def test_rtn_weights_lie_on_their_grid(rows, cols, text, seed):
    spec = parse(text)
    linear = _linear(rows, cols, seed)
    original = linear.weight.detach().clone()
    stats = RTNSolver(linear).apply(spec)
    quantized = linear.weight.detach()
    scale, zero = grid.matrix_params(original, spec.bits, spec.group)
    assert grid.on_grid(quantized, scale, zero, spec.bits, spec.group)
    assert int(grid.levels_per_group(quantized, spec).max()) <= 2**spec.bits
    assert stats["ragged_last_group"] == (cols % spec.group if spec.group and spec.group < cols else 0)
    assert set(stats) >= {"seconds", "bits", "group", "ragged_last_group"}
    # round to nearest: never further than half a step (values inside the grid's range)
    step = scale.repeat_interleave(spec.group or cols, dim=1)[:, :cols] if spec.group else scale.expand(rows, cols)
    assert bool(((quantized - original).abs() <= step / 2 + 1e-6).all())


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(2, 300), text=SPECS, seed=st.integers(0, 10_000))
def test_rtn_is_idempotent(rows, cols, text, seed):
    spec = parse(text)
    linear = _linear(rows, cols, seed)
    RTNSolver(linear).apply(spec)
    once = linear.weight.detach().clone()
    RTNSolver(linear).apply(spec)
    assert torch.allclose(linear.weight, once, rtol=0, atol=1e-6)


def test_ragged_last_group_has_its_own_params():
    # SmolLM2: 576 inputs at g128 = 4 x 128 + 64; the last group is quantized on its own range
    weight = torch.randn(6, 576, generator=torch.Generator().manual_seed(0))
    weight[:, 512:] *= 100
    assert grid.group_bounds(576, 128)[-1] == (512, 576)
    assert len(grid.group_bounds(576, 128)) == 5
    linear = torch.nn.Linear(576, 6, bias=False)
    linear.weight.data.copy_(weight)
    stats = RTNSolver(linear).apply(parse("w4g128"))
    assert stats["ragged_last_group"] == 64
    assert torch.equal(linear.weight[:, :512], grid.quantize_matrix(weight[:, :512], 4, 128))
    assert torch.equal(linear.weight[:, 512:], grid.quantize_matrix(weight[:, 512:], 4, None))
    assert grid.levels_per_group(linear.weight.detach(), parse("w4g128")).shape == (6, 5)


def test_all_zero_group_stays_zero():
    weight = torch.zeros(3, 10)
    assert torch.equal(grid.quantize_matrix(weight, 4, 5), weight)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("solver", [RTNSolver, GPTQSolver])
def test_dtype_is_preserved(dtype, solver):
    linear = _linear(16, 96, 1, dtype=dtype)
    quant = solver(linear)
    quant.add_batch(torch.randn(2, 40, 96).to(dtype))
    quant.apply(parse("w4g32"))
    assert linear.weight.dtype == dtype
    assert torch.isfinite(linear.weight.float()).all()


def _calibration(cols, tokens=2048, seed=0):
    """Correlated inputs (a random mixing of fewer latent factors) with a few large outlier features."""
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(tokens, cols // 2, generator=generator)
    x = latent @ torch.randn(cols // 2, cols, generator=generator) / (cols // 2) ** 0.5
    x += 0.1 * torch.randn(tokens, cols, generator=generator)
    for column in (3, cols // 3, cols - 5):
        x[:, column] *= 25
    return x


def _output_error(weight, dense, x):
    return float((x @ weight.t() - x @ dense.t()).norm())


@pytest.mark.parametrize("text", ["w3g128", "w4g128", "w3", "w4"])
def test_gptq_reconstructs_the_output_better_than_rtn(text):
    spec = parse(text)
    x = _calibration(320)  # 320 inputs: two groups of 128 and a ragged one of 64
    dense = _linear(48, 320, 7)
    original = dense.weight.detach().clone()
    rtn, gptq = _linear(48, 320, 7), _linear(48, 320, 7)
    RTNSolver(rtn).apply(spec)
    solver = GPTQSolver(gptq)
    for chunk in x.split(512):
        solver.add_batch(chunk.reshape(2, -1, 320))  # [batch, seq, hidden] like a decoder's linears see
    stats = solver.apply(spec)
    assert stats["ragged_last_group"] == (64 if spec.group else 0)
    assert stats["nsamples"] == 2048
    q = gptq.weight.detach()
    assert grid.on_grid(q, solver.scale, solver.zero, spec.bits, spec.group)
    assert int(grid.levels_per_group(q, spec).max()) <= 2**spec.bits
    err_gptq, err_rtn = _output_error(q, original, x), _output_error(rtn.weight.detach(), original, x)
    assert err_gptq < 0.8 * err_rtn, (err_gptq, err_rtn)


@pytest.mark.parametrize("text", ["w4g64", "w3"])
def test_gptq_lazy_block_updates_do_not_change_the_result(text):
    # lazy batch updates are exact algebra and groups start on up-to-date weights whatever the block size
    x = _calibration(256, tokens=1024)
    results = []
    for blocksize in (32, 128, 256):
        linear = _linear(16, 256, 9)
        solver = GPTQSolver(linear)
        solver.add_batch(x)
        solver.apply(parse(text), blocksize=blocksize)
        results.append(linear.weight.detach().clone())
    for other in results[1:]:
        # equal up to float rounding (a rare rounding flip may cascade along a row)
        assert float(((other - results[0]).abs() > 1e-6).float().mean()) < 0.01


def test_gptq_act_order_groups_follow_the_permutation():
    spec = parse("w4g64")
    x = _calibration(192)
    linear = _linear(24, 192, 3)
    original = linear.weight.detach().clone()
    solver = GPTQSolver(linear)
    solver.add_batch(x)
    stats = solver.apply(spec, act_order=True)
    assert stats["act_order"] and solver.perm is not None
    q = linear.weight.detach()
    assert grid.on_grid(q[:, solver.perm], solver.scale, solver.zero, spec.bits, spec.group)
    rtn = _linear(24, 192, 3)
    RTNSolver(rtn).apply(spec)
    assert _output_error(q, original, x) < _output_error(rtn.weight.detach(), original, x)


def test_gptq_dead_inputs_are_zeroed_and_stats_reported():
    x = _calibration(64, tokens=256)
    x[:, [5, 9]] = 0
    linear = _linear(8, 64, 2)
    solver = GPTQSolver(linear)
    solver.add_batch(x)
    stats = solver.apply(parse("w4g32"))
    assert stats["dead_inputs"] == 2
    assert bool((linear.weight[:, [5, 9]] == 0).all())
    assert set(stats) >= {"seconds", "bits", "group", "ragged_last_group", "damp", "loss"}
    solver.free()
    assert solver.H is None


def test_int8_linear_is_close_to_the_float_linear():
    linear = _linear(32, 96, 4, bias=True)
    x = torch.randn(3, 10, 96, generator=torch.Generator().manual_seed(1))
    x[..., 7] *= 20  # an outlier feature
    module = Int8Linear(linear)
    out, ref = module(x), linear(x)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert float((out - ref).detach().norm() / ref.detach().norm()) < 0.02
    assert module.weight_int8.dtype == torch.int8
    assert module.stats()["outlier_fraction"] == pytest.approx(1 / 96)


def test_int8_outlier_columns_use_the_float_weights_exactly():
    linear = _linear(16, 40, 5, bias=True)
    module = Int8Linear(linear, threshold=6.0)
    x = torch.zeros(4, 40)
    columns = torch.tensor([2, 31])
    x[:, columns] = torch.tensor([[7.0, -9.5], [0.5, 8.0], [-6.5, 1.0], [12.0, 0.0]])
    # only outlier features are non-zero: the int8 path contributes nothing
    assert torch.equal(module(x), x[:, columns] @ linear.weight[:, columns].t() + linear.bias)
    # mixed input: int8 part (exact integer product, rescaled) + fp part
    regular = torch.randn(4, 40, generator=torch.Generator().manual_seed(0))
    regular[:, columns] = 0
    mixed = regular + x
    absmax = regular.abs().amax(dim=1)
    x8 = torch.round(regular * 127 / absmax[:, None])
    w_absmax = linear.weight.abs().amax(dim=1)
    w8 = torch.round(linear.weight * 127 / w_absmax[:, None])
    expected = (x8.double() @ w8.double().t()) * (absmax.double()[:, None] * w_absmax.double()[None, :]) / 127**2
    expected = expected.float() + x[:, columns] @ linear.weight[:, columns].t() + linear.bias
    assert torch.allclose(module(mixed), expected, atol=1e-6, rtol=1e-6)


def test_replace_linears_and_undo_restores_the_same_objects(tiny):
    model, tokenizer = tiny
    ids = tokenizer(["int8 matmul with outliers"], return_tensors="pt").input_ids
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in name}
    weights = {name: m.weight.detach().clone() for name, m in linears.items()}
    with torch.no_grad():
        dense = model(ids).logits
        undo = replace_linears(linears, model)
        assert all(isinstance(model.get_submodule(name), Int8Linear) for name in linears)
        int8 = model(ids).logits
        stats = undo.stats()
        undo()
        undo()  # idempotent
        after = model(ids).logits
    assert all(model.get_submodule(name) is module for name, module in linears.items())
    assert all(torch.equal(module.weight, weights[name]) for name, module in linears.items())
    assert torch.equal(after, dense)
    assert float((int8 - dense).norm() / dense.norm()) < 0.05
    assert 0 <= stats["outlier_fraction"] <= 1 and set(stats["per_module"]) == set(linears)
