"""Weight quantizers: AWQ on LLaMA and Gemma 3 blocks."""

import pytest
import torch

from pytest_kick.compress import grid
from pytest_kick.compress.awq import _fold, _norm_offset, awq_block
from pytest_kick.compress.spec import parse
from pytest_kick.models.tiny import tiny_random_llama

pytestmark = pytest.mark.usefixtures("one_thread")


def _block_io(model, ids):
    """(layer 0, its input hidden states split per sequence, forward) captured with a pre-hook."""
    block = model.model.layers[0]
    captured = {}

    def hook(module, args, kwargs):
        captured["hidden"] = args[0] if args else kwargs["hidden_states"]
        captured["kwargs"] = {k: v for k, v in kwargs.items() if k not in ("hidden_states", "past_key_values")}

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(ids, use_cache=False)
    handle.remove()
    kwargs = captured["kwargs"]
    inputs = list(captured["hidden"].split(1))
    kwargs["position_embeddings"] = tuple(t[:1] for t in kwargs["position_embeddings"])
    kwargs["position_ids"] = kwargs["position_ids"][:1] if kwargs.get("position_ids") is not None else None
    return block, inputs, lambda hidden: block(hidden, **kwargs)


def _block_error(forward, inputs, dense):
    with torch.no_grad():
        outs = [forward(h) for h in inputs]
    outs = [o[0] if isinstance(o, tuple) else o for o in outs]
    return sum(float((o - d).pow(2).sum()) for o, d in zip(outs, dense)) / sum(d.numel() for d in dense)


def _awq_vs_rtn(model, ids, spec, salient):
    block, inputs, forward = _block_io(model, ids)
    with torch.no_grad():
        offset = _norm_offset(block.input_layernorm)
        for norm in (
            block.input_layernorm,
            getattr(block, "pre_feedforward_layernorm", None) or block.post_attention_layernorm,
        ):
            norm.weight[salient] = (norm.weight[salient] + offset) * 30 - offset  # a few large gains
        dense = [o[0] if isinstance(o, tuple) else o for o in (forward(h) for h in inputs)]
    saved = {k: v.clone() for k, v in block.state_dict().items()}
    for module in block.modules():
        if isinstance(module, torch.nn.Linear):
            grid.rtn_(module.weight.data, spec.bits, spec.group)
    rtn = _block_error(forward, inputs, dense)
    block.load_state_dict(saved)
    stats = awq_block(block, inputs, forward, spec)
    awq = _block_error(forward, inputs, dense)
    for name, value in block.state_dict().items():
        if name not in stats["changed"]:
            assert torch.equal(value, saved[name]), name
    return rtn, awq, stats


def test_awq_beats_rtn_on_a_llama_block_with_salient_channels():
    model, _, _ = tiny_random_llama(seed=3)
    ids = torch.randint(3, 200, (3, 24), generator=torch.Generator().manual_seed(0))
    rtn, awq, stats = _awq_vs_rtn(model.eval(), ids, parse("w4g128"), [1, 17, 40])
    assert awq <= rtn
    assert {"input_layernorm.weight", "post_attention_layernorm.weight", "mlp.up_proj.weight"} <= set(stats["changed"])
    assert set(stats["alphas"]) == {"input_layernorm", "post_attention_layernorm", "mlp.up_proj"}
    assert any("grouped-query" in note for note in stats["skipped"])
    assert max(stats["alphas"].values()) > 0


def test_awq_scales_v_proj_into_o_proj_without_gqa():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    ).eval()
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(1))
    rtn, awq, stats = _awq_vs_rtn(model, ids, parse("w3g16"), [0, 5])
    assert "self_attn.v_proj" in stats["alphas"] and not stats["skipped"]
    assert awq <= rtn


@pytest.fixture(scope="module")
def tiny_gemma3():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        sliding_window=32,
        layer_types=["full_attention"],
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():  # Gemma initialises norm weights to 0 (gain 1 + w); give them some spread
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(0.3 * torch.randn(param.shape))
    return model


def test_awq_on_a_gemma3_block_with_sandwich_norms(tiny_gemma3):
    block = tiny_gemma3.model.layers[0]
    assert _norm_offset(block.pre_feedforward_layernorm) == 1.0
    ids = torch.randint(0, 300, (3, 20), generator=torch.Generator().manual_seed(2))
    rtn, awq, stats = _awq_vs_rtn(tiny_gemma3, ids, parse("w4g128"), [3, 30, 60])
    assert awq <= rtn
    assert set(stats["alphas"]) == {"input_layernorm", "pre_feedforward_layernorm", "mlp.up_proj"}
    assert "pre_feedforward_layernorm.weight" in stats["changed"]
    assert "post_attention_layernorm.weight" not in stats["changed"]


def test_folding_into_a_gemma_norm_keeps_the_function(tiny_gemma3, tiny):
    model, _ = tiny
    for norm in (tiny_gemma3.model.layers[0].pre_feedforward_layernorm, model.model.layers[0].input_layernorm):
        offset = _norm_offset(norm)
        layer = torch.nn.Linear(norm.weight.shape[0], 8, bias=False)
        x = torch.randn(5, norm.weight.shape[0])
        saved = norm.weight.detach().clone()
        with torch.no_grad():
            before = layer(norm(x))
            scales = torch.rand(norm.weight.shape[0]) * 4 + 0.2
            _fold(norm, scales, offset)
            layer.weight.mul_(scales[None, :])
            after = layer(norm(x))
            norm.weight.copy_(saved)
        assert torch.allclose(before, after, atol=1e-5, rtol=1e-4)
    assert _norm_offset(model.model.layers[0].input_layernorm) == 0.0
