"""The shared compression pipeline on a tiny LLaMA: every compressor through the registry, exact counts,
only decoder-block linears touched, bit-for-bit restore (from memory and from safetensors on disk), and
the quality order the papers report when activations have outliers."""

from pathlib import Path

import pytest
import torch

from pytest_kick.compress import info, names, pipeline
from pytest_kick.compress.base import DenseWeights, compressible_linears, decoder_layers
from pytest_kick.compress.spec import parse
from pytest_kick.errors import KickError
from pytest_kick.models.tiny import tiny_random_llama

CALIBRATED = [n for n in names() if info(n).calibrated]


def _model(seed=2):
    model, tokenizer, _ = tiny_random_llama(seed=seed)
    return model.eval(), tokenizer


def _calibration(samples=8, seqlen=32, seed=0):
    return torch.randint(3, 250, (samples, seqlen), generator=torch.Generator().manual_seed(seed))


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize(
    "compressor, ratio",
    [
        ("magnitude", "0.5"),
        ("magnitude", "2:4"),
        ("wanda", "0.3"),
        ("wanda", "4:8"),
        ("sparsegpt", "0.5"),
        ("sparsegpt", "2:4"),
        ("gptq", "w4g128"),
        ("gptq", "w3g128"),
        ("rtn", "w8"),
        ("awq", "w4g128"),
        ("int8", "w8a8"),
    ],
)
def test_every_compressor_changes_only_decoder_linears_and_restores_bit_for_bit(compressor, ratio):
    model, _ = _model()
    before = _snapshot(model)
    x = _calibration(2, 16, seed=9)
    with torch.no_grad():
        dense_logits = model(x).logits
    dense = DenseWeights(model)
    spec = parse(ratio)
    linears = {f"{name}.weight" for name in compressible_linears(model)}
    report = pipeline.compress(model, compressor, spec, dense, _calibration() if info(compressor).calibrated else None)
    for name, p in model.named_parameters():
        if name.startswith("model.embed_tokens") or name.startswith("lm_head") or name == "model.norm.weight":
            assert torch.equal(p, before[name]), f"{compressor} changed {name}"
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    if compressor == "awq":  # AWQ folds its scales into the norms before the linears it quantizes
        assert changed & linears and all(n.startswith("model.layers.") for n in changed)
    else:
        assert changed <= linears
    with torch.no_grad():
        assert not torch.equal(model(x).logits, dense_logits), f"{compressor}@{ratio} changed nothing"
    if spec.is_pruning:
        assert report.achieved == pytest.approx(spec.sparsity, abs=1e-3)
    elif compressor != "int8":
        assert report.bits <= spec.bits
    if report.undo is not None:
        report.undo()
    dense.restore()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), f"{compressor}: {name} not restored"
    with torch.no_grad():
        assert torch.equal(model(x).logits, dense_logits)


def test_dense_weights_come_back_from_the_safetensors_file(tmp_path):
    from safetensors.torch import save_model

    model, _ = _model()
    save_model(model, str(tmp_path / "model.safetensors"))
    before = _snapshot(model)
    dense = DenseWeights(model, tmp_path)
    assert dense.mode == "disk" and not dense.saved
    pipeline.compress(model, "magnitude", parse("0.5"), dense)
    assert not dense.saved  # nothing copied in memory: the file is the backup
    dense.restore()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_capture_records_the_first_block_inputs_and_per_block_kwargs():
    model, _ = _model()
    ids = _calibration(8, 16)
    inputs, kwargs = pipeline.capture(model, ids, batch=4)
    assert len(inputs) == 2 and inputs[0].shape == (4, 16, model.config.hidden_size)
    assert set(kwargs) == set(range(len(decoder_layers(model))))
    with torch.no_grad():
        expected = model.model.embed_tokens(ids[:4])
    assert torch.allclose(inputs[0], expected)


def test_an_unsuited_ratio_is_refused_before_anything_changes():
    model, _ = _model()
    before = _snapshot(model)
    with pytest.raises(KickError, match="gptq does not take 0.5"):
        pipeline.compress(model, "gptq", parse("0.5"), DenseWeights(model), _calibration())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def _with_outliers(seed=3):
    """A tiny LLaMA whose RMSNorm gains are scaled up on a few channels: the activation outliers of real
    LLMs, which random models otherwise lack and which separate the compressors."""
    model, _ = _model(seed)
    with torch.no_grad():
        for layer in decoder_layers(model):
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight[:4] *= 30
    return model


def _layer_error(compressor, ratio):
    """Mean squared error of every decoder block's output, compressed vs dense, on the same inputs."""
    model = _with_outliers()
    ids = _calibration(8, 32, seed=1)
    inputs, kwargs = pipeline.capture(model, ids, batch=8)
    dense_out = []
    layers = decoder_layers(model)
    with torch.no_grad():
        hidden = inputs[0]
        for k, layer in enumerate(layers):
            dense_out.append(pipeline._block_output(layer(hidden, **kwargs[k])))
            hidden = dense_out[-1]
    pipeline.compress(model, compressor, parse(ratio), DenseWeights(model), ids)
    error = 0.0
    with torch.no_grad():
        hidden = inputs[0]
        for k, layer in enumerate(layers):  # each compressed block on the dense inputs of that block
            out = pipeline._block_output(layer(hidden, **kwargs[k]))
            error += float(((out - dense_out[k]) ** 2).mean())
            hidden = dense_out[k]
    return error


def test_with_activation_outliers_sparsegpt_beats_wanda_beats_magnitude():
    errors = {c: _layer_error(c, "0.5") for c in ("sparsegpt", "wanda", "magnitude")}
    assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], errors


@pytest.mark.parametrize("compressor", ["wanda", "sparsegpt"])
def test_4_of_8_is_no_worse_than_2_of_4(compressor):
    assert _layer_error(compressor, "4:8") <= _layer_error(compressor, "2:4")


def test_4_of_8_magnitude_removes_no_more_weight_mass_than_2_of_4():
    """Magnitude ignores activations, so its guarantee is in weight space: 4:8 may choose any 2:4 mask."""
    removed = {}
    for ratio in ("2:4", "4:8"):
        model, _ = _model()
        before = {n: m.weight.detach().clone() for n, m in compressible_linears(model).items()}
        pipeline.compress(model, "magnitude", parse(ratio), DenseWeights(model))
        removed[ratio] = sum(
            float(((before[n] - m.weight.detach()) ** 2).sum()) for n, m in compressible_linears(model).items()
        )
    assert removed["4:8"] <= removed["2:4"]


@pytest.mark.parametrize("ratio", ["w3g128", "w4g128"])
def test_gptq_beats_round_to_nearest_at_the_same_bits(ratio):
    assert _layer_error("gptq", ratio) < _layer_error("rtn", ratio)


def test_failed_compression_leaves_the_dense_model_intact(monkeypatch):
    from pytest_kick.config import OPTIONS, build
    from pytest_kick.runtime import Runtime

    raw = {opt.name: None for opt in OPTIONS}
    raw.update(model="tiny-random-llama", compressor="magnitude", ratio="0.1")
    runtime = Runtime(build(raw, Path(".")))
    loaded = runtime.model("tiny-random-llama")
    before = _snapshot(loaded.model)

    def broken(*args, **kwargs):  # a compressor that prunes part of the model, then fails
        runtime._backups["tiny-random-llama"].remember(["model.layers.0.self_attn.q_proj.weight"])
        compressible_linears(loaded.model)["model.layers.0.self_attn.q_proj"].weight.data.zero_()
        raise KickError("magnitude@0.1: missed")

    monkeypatch.setattr(pipeline, "compress", broken)
    with pytest.raises(KickError):
        runtime.use_variant("tiny-random-llama", "magnitude", "0.1")
    assert all(torch.equal(p, before[n]) for n, p in loaded.model.named_parameters())
    assert runtime.use_variant("tiny-random-llama", None, None) is loaded


def test_zeros_the_dense_model_already_has_count_toward_the_ratio():
    model, _ = _model()
    first_name, first = next(iter(compressible_linears(model).items()))
    with torch.no_grad():
        first.weight[:, : first.weight.shape[1] // 2] = 0  # already half zero
    report = pipeline.compress(model, "magnitude", parse("0.1"), DenseWeights(model))
    assert report.per_layer[first_name] == pytest.approx(0.5)
    assert all(v == pytest.approx(0.1, abs=1e-3) for k, v in report.per_layer.items() if k != first_name)


def test_calibrated_compressors_are_the_ones_that_need_data():
    assert set(CALIBRATED) == {"wanda", "sparsegpt", "gptq", "awq"}
    model, _ = _model()
    with pytest.raises(KickError, match="needs calibration"):
        pipeline.compress(model, "wanda", parse("0.5"), DenseWeights(model), None)
