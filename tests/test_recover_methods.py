"""Recovery on a compressed tiny-random-llama: each method regains held-out loss, and the compressed model
is exactly the compressed model again after training and after evaluation."""

import pytest
import torch

from pytest_kick.compress import pipeline
from pytest_kick.compress.base import DenseWeights, compressible_linears
from pytest_kick.compress.spec import parse
from pytest_kick.models.tiny import tiny_random_llama
from pytest_kick.recover import RecoverySpec, parameter_count, recover
from pytest_kick.recover.data import load_corpus, windows
from pytest_kick.recover.train import held_out_loss

STEPS = 25
SEQLEN = 64


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture
def compressed():
    """tiny-random-llama, magnitude-pruned to 50 %."""
    model, tokenizer, _ = tiny_random_llama(seed=0)
    model.eval()
    pipeline.compress(model, "magnitude", parse("0.5"), DenseWeights(model))
    return model, tokenizer


def snapshot(model):
    """Every parameter and buffer (cloned), and the module tree (names and types)."""
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [(name, type(m)) for name, m in model.named_modules()],
        {name: p.requires_grad for name, p in model.named_parameters()},
        sorted(vars(model)),
    )


def assert_same(model, before):
    state, modules, grads, attrs = before
    now = model.state_dict()
    assert set(now) == set(state)
    for k, v in state.items():
        assert now[k].dtype == v.dtype and torch.equal(now[k], v), k
    assert [(name, type(m)) for name, m in model.named_modules()] == modules
    assert {name: p.requires_grad for name, p in model.named_parameters()} == grads
    assert sorted(vars(model)) == attrs


@pytest.mark.parametrize("method", ["prompt", "idp", "lora"])
def test_each_method_lowers_held_out_loss_and_leaves_the_model_exactly_compressed(
    method, compressed, corpus, one_thread
):
    model, tokenizer = compressed
    held = windows(tokenizer, corpus.held_out, 12, SEQLEN, 0, "held-out")
    before = snapshot(model)
    base = held_out_loss(model, held)

    recovery = recover(model, tokenizer, RecoverySpec(method, steps=STEPS, seqlen=SEQLEN), corpus)
    assert_same(model, before)  # training changed nothing of the model
    with recovery.applied(model):
        recovered = held_out_loss(model, held)
    assert_same(model, before)  # nor did evaluation
    assert held_out_loss(model, held) == base

    assert recovered < base - 0.02, f"{method}: held-out loss {base:.4f} -> {recovered:.4f}"
    assert recovery.losses[-1] < recovery.losses[0]
    assert recovery.extra_parameters == sum(v.numel() for v in recovery.params.values())
    assert recovery.extra_parameters == parameter_count(model, recovery.spec)
    assert not recovery.cached


def test_lora_stays_unmerged_while_applied(compressed, corpus, one_thread):
    """While LoRA is on, every compressed weight (zeros included) is untouched and the adapter sits beside it."""
    model, tokenizer = compressed
    pruned = {name: linear.weight.detach().clone() for name, linear in compressible_linears(model).items()}
    recovery = recover(model, tokenizer, RecoverySpec("lora", steps=3, seqlen=SEQLEN), corpus)
    assert any(v.abs().sum() > 0 for k, v in recovery.params.items() if k.endswith("lora_B"))  # it learned
    with recovery.applied(model):
        for name, weight in pruned.items():
            layer = model.get_submodule(name)
            base = getattr(layer, "base_layer", layer)
            assert torch.equal(base.weight, weight), name
            assert (hasattr(layer, "lora_A")) == (name.rsplit(".", 1)[1] in ("q_proj", "v_proj"))
        ids = torch.tensor([[5, 6, 7, 8]])
        with torch.inference_mode():
            on = model(input_ids=ids).logits
    with torch.inference_mode():
        off = model(input_ids=ids).logits
    assert not torch.allclose(on, off)  # the adapter is what changed the output


def test_restored_even_when_evaluation_fails(compressed, corpus, one_thread):
    model, tokenizer = compressed
    recovery = recover(model, tokenizer, RecoverySpec("lora", steps=1, seqlen=SEQLEN), corpus)
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        with recovery.applied(model):
            raise RuntimeError("boom")
    assert_same(model, before)


def test_lora_targets_all_and_unknown(compressed, corpus):
    model, tokenizer = compressed
    every = parameter_count(model, RecoverySpec("lora", sizes={"targets": "all"}))
    default = parameter_count(model, RecoverySpec("lora"))
    assert every > default > 0
    from pytest_kick.errors import KickError

    with pytest.raises(KickError, match="qkv_proj.*choose from all"):
        parameter_count(model, RecoverySpec("lora", sizes={"targets": "qkv_proj"}))
