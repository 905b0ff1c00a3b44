"""IDP: each input uses the prompt of its pool it attends to most, and with one prompt IDP is prompt tuning."""

import pytest
import torch

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.models.tiny import tiny_random_llama
from pytest_kick.recover import RecoverySpec, recover
from pytest_kick.recover.data import load_corpus
from pytest_kick.recover.idp import DynamicPrompting, attention_mass, attention_modules
from pytest_kick.recover.recovery import Recovery
from pytest_kick.requests import GenerationRequest

HEAD_DIM = 16
SLOW = 7  # rotary pair (7, 15) turns by 10000^(-14/16) rad per position: position barely matters


def steered_model():
    """tiny-random-llama whose attention is built by hand: in block 0 a query's logit to a key is
    16 * x[1] * y[0] (x, y the RMS-normalised query and key inputs, along the slowest rotary pair); in
    every later block all queries are zero, so attention there is uniform over what a token may see and
    gives every prompt of equal length the same mass."""
    model, tokenizer, _ = tiny_random_llama(seed=0)
    model.eval()
    layers = model.get_decoder().layers
    with torch.no_grad():
        for index, layer in enumerate(layers):
            attn = layer.self_attn
            attn.q_proj.weight.zero_()
            if index == 0:
                attn.k_proj.weight.zero_()
                for head in range(model.config.num_attention_heads):
                    attn.q_proj.weight[head * HEAD_DIM + SLOW, 1] = 1.0
                for head in range(model.config.num_key_value_heads):
                    attn.k_proj.weight[head * HEAD_DIM + SLOW, 0] = 1.0
    return model, tokenizer


def hand_built_pool(angles, tokens=2, hidden=64):
    """Prompt j: ``tokens`` copies of cos(a_j) e0 + sin(a_j) e2, so its key in block 0 grows with cos(a_j)."""
    pool = torch.zeros(len(angles), tokens, hidden)
    for j, a in enumerate(angles):
        pool[j, :, 0] = torch.cos(torch.tensor(a))
        pool[j, :, 2] = torch.sin(torch.tensor(a))
    return pool


def test_each_input_picks_the_prompt_it_attends_to_most(one_thread):
    model, _ = steered_model()
    pool = hand_built_pool([1.2, 0.1, 0.6])  # keys: prompt 1 highest, prompt 0 lowest
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(3, 5, 64, generator=g) * 0.01
    embeds[0, :, 1] += 1.0  # positive queries: drawn to the highest key -> prompt 1
    embeds[1, :, 1] -= 1.0  # negative queries: drawn to the lowest key -> prompt 0
    embeds[2, 2:, 1] += 1.0  # like row 0, with two positions of left padding
    mask = torch.ones(3, 5, dtype=torch.long)
    mask[2, :2] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    decoder = model.get_decoder()
    mass = attention_mass(decoder, attention_modules(model), pool, embeds, mask, positions)
    assert mass.shape == (3, 3)
    assert mass.argmax(-1).tolist() == [1, 0, 1]
    assert mass[0, 1] > mass[0, 2] > mass[0, 0]  # the mass follows the keys, not just the winner
    assert mass[1, 0] > mass[1, 2] > mass[1, 1]

    # through the hooks: the chosen prompt is the one in front of each input, the others are absent
    recovery = Recovery(
        RecoverySpec("idp", sizes={"prompts": 3, "tokens": 2}), {"pool": pool}, pool.numel(), 0.0, False
    )
    with torch.inference_mode():
        with recovery.applied(model):
            got = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
        assert recovery.evaluation_usage == [1, 2, 0]  # row 1 chose prompt 0, rows 0 and 2 prompt 1
        for row, chosen in enumerate([1, 0, 1]):
            alone = torch.cat([pool[chosen], embeds[row]])[None]
            keep = torch.cat([torch.ones(2, dtype=torch.long), mask[row]])[None]
            pos = torch.cat([torch.arange(2), positions[row] + 2])[None]
            reference = decoder(inputs_embeds=alone, attention_mask=keep, position_ids=pos).last_hidden_state
            real = mask[row].bool()
            torch.testing.assert_close(got[row][real], reference[0, 2:][real], atol=1e-5, rtol=1e-5)


def test_the_selection_pass_leaves_the_attention_implementation_as_it_was(one_thread):
    model, _ = steered_model()
    before = model.config._attn_implementation
    attention_mass(model.get_decoder(), attention_modules(model), hand_built_pool([0.3, 0.9]), torch.randn(1, 4, 64))
    assert model.config._attn_implementation == before


def test_generation_keeps_the_prompt_chosen_at_the_first_pass(one_thread):
    """Cached IDP generation = prompt tuning with the prompt the input chose on its first pass."""
    model, tokenizer, _ = tiny_random_llama(seed=1)
    model.eval()
    spec = RecoverySpec("idp", sizes={"prompts": 3, "tokens": 4})
    pool = DynamicPrompting(spec).initial(model, seed=3)["pool"] * 3
    idp = Recovery(spec, {"pool": pool}, pool.numel(), 0.0, False)
    request = GenerationRequest(prompt="Once upon a time", max_new_tokens=6)
    with idp.applied(model):
        generated = Engine(model, tokenizer, batch_size=1).generate_ids([request])[0]
    ids = torch.tensor([tokenizer(request.prompt)["input_ids"]])
    embeds = model.get_input_embeddings()(ids).detach()
    chosen = int(attention_mass(model.get_decoder(), attention_modules(model), pool, embeds).argmax())
    single = Recovery(RecoverySpec("prompt", sizes={"tokens": 4}), {"prompt": pool[chosen]}, 0, 0.0, False)
    with single.applied(model):
        expected = Engine(model, tokenizer, batch_size=1).generate_ids([request])[0]
    assert generated == expected and len(generated) > 0


def test_with_one_prompt_idp_is_prompt_tuning(one_thread):
    corpus = load_corpus()
    model, tokenizer, _ = tiny_random_llama(seed=0)
    model.eval()
    idp = recover(model, tokenizer, RecoverySpec("idp", steps=4, seqlen=48, sizes={"prompts": 1, "tokens": 5}), corpus)
    prompt = recover(model, tokenizer, RecoverySpec("prompt", steps=4, seqlen=48, sizes={"tokens": 5}), corpus)
    assert idp.extra_parameters == prompt.extra_parameters == 5 * 64
    assert torch.equal(idp.params["pool"][0], prompt.params["prompt"])
    assert idp.losses == prompt.losses
    ids = torch.tensor([[7, 8, 9, 10, 11]])
    with torch.inference_mode():
        with idp.applied(model):
            a = model(input_ids=ids).logits
        with prompt.applied(model):
            b = model(input_ids=ids).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("prompts", [2, 4])
def test_idp_training_uses_the_pool(prompts, one_thread):
    """Every training input is routed to one prompt; usage counts add up to the inputs seen."""
    model, tokenizer, _ = tiny_random_llama(seed=0)
    model.eval()
    spec = RecoverySpec("idp", steps=3, batch=2, seqlen=32, sizes={"prompts": prompts, "tokens": 3})
    recovery = recover(model, tokenizer, spec, load_corpus())
    assert len(recovery.usage) == prompts and sum(recovery.usage) == 3 * 2
    assert recovery.params["pool"].shape == (prompts, 3, 64)
