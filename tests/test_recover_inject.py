"""Soft prompts reach every caller of the model correctly: the definition (prompt embeddings in front of
the input), left padding with explicit positions, KV-cache continuation, prefix-cache reuse, generation."""

import copy

import pytest
import torch

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.models.tiny import tiny_random_llama
from pytest_kick.recover import RecoverySpec
from pytest_kick.recover.recovery import Recovery, method_for
from pytest_kick.requests import GenerationRequest


@pytest.fixture
def model_and_tokenizer():
    model, tokenizer, _ = tiny_random_llama(seed=1)
    return model.eval(), tokenizer


def recovery_for(model, method: str, **sizes) -> Recovery:
    """An untrained recovery with seeded random parameters (scaled up so they matter)."""
    spec = RecoverySpec(method, sizes=sizes)
    params = {k: v * 3 for k, v in method_for(spec).initial(model, seed=7).items()}
    return Recovery(spec, params, sum(v.numel() for v in params.values()), 0.0, False)


def test_prompt_is_embeddings_in_front_of_the_input(model_and_tokenizer):
    model, _ = model_and_tokenizer
    recovery = recovery_for(model, "prompt", tokens=4)
    ids = torch.tensor([[3, 40, 41, 42, 43, 44], [3, 50, 51, 52, 53, 54]])
    with torch.inference_mode():
        with recovery.applied(model):
            got = model(input_ids=ids).logits  # [2, 6, V]
        prompt = recovery.params["prompt"][None].expand(2, -1, -1)
        reference = model(inputs_embeds=torch.cat([prompt, model.get_input_embeddings()(ids)], 1)).logits
    assert got.shape == (2, 6, reference.shape[-1])
    torch.testing.assert_close(got, reference[:, 4:])


@pytest.mark.parametrize("method", ["prompt", "idp"])
def test_generation_does_not_depend_on_the_batch(model_and_tokenizer, method, one_thread):
    """Left padding + explicit positions: a prompt generates the same tokens alone and beside longer ones."""
    model, tokenizer = model_and_tokenizer
    recovery = recovery_for(model, method)
    requests = [
        GenerationRequest(prompt=p, max_new_tokens=8)
        for p in ["The cat", "A much longer prompt than the first one, padded on the left", "Mid length text"]
    ]
    with recovery.applied(model):
        alone = [Engine(model, tokenizer, batch_size=1).generate_ids([r])[0] for r in requests]
        batched = Engine(model, tokenizer, batch_size=3).generate_ids(requests)
    plain = Engine(model, tokenizer, batch_size=3).generate_ids(requests)
    assert alone == batched
    assert batched != plain  # the prompt changed what the model says


def test_cached_generation_equals_recomputing_every_step(model_and_tokenizer, one_thread):
    """The KV cache holds the prompt: continuing it gives the tokens a full pass over the sequence gives.
    (IDP chooses its prompt at the first pass only: see test_recover_idp.)"""
    model, tokenizer = model_and_tokenizer
    recovery = recovery_for(model, "prompt")
    request = GenerationRequest(prompt="Once upon a time", max_new_tokens=6)
    with recovery.applied(model):
        cached = Engine(model, tokenizer, batch_size=1).generate_ids([request])[0]
        ids = tokenizer(request.prompt)["input_ids"]
        recomputed = []
        with torch.inference_mode():
            for _ in range(6):
                logits = model(input_ids=torch.tensor([ids + recomputed]), use_cache=False).logits
                recomputed.append(int(logits[0, -1].argmax()))
    assert cached == recomputed[: len(cached)] and len(cached) > 0


def test_prefix_cache_reuse_equals_one_pass(model_and_tokenizer):
    """A shared prefix run once into a cache (with the prompt), copied per row and continued with offset
    positions and right-padded rows, gives the hidden states one full pass gives (prompt tuning)."""
    from transformers import DynamicCache

    model, _ = model_and_tokenizer
    recovery = recovery_for(model, "prompt", tokens=3)
    decoder = model.get_decoder()
    prefix = [3, 10, 11, 12, 13]
    rows = [[20, 21, 22], [30, 31]]
    with torch.inference_mode(), recovery.applied(model):
        cache = DynamicCache(config=model.config)
        ids = torch.tensor([prefix])
        decoder(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True)
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(2)
        S, W = len(prefix), 3
        cont = torch.tensor([rows[0], rows[1] + [0]])
        mask = torch.tensor([[1] * (S + 3), [1] * (S + 2) + [0]])
        positions = torch.arange(S, S + W).expand(2, W)
        reused = decoder(
            input_ids=cont, attention_mask=mask, position_ids=positions, cache=past, use_cache=True
        ).last_hidden_state
        for r, row in enumerate(rows):
            whole = decoder(input_ids=torch.tensor([prefix + row])).last_hidden_state[0, S:]
            torch.testing.assert_close(reused[r, : len(row)], whole, atol=1e-5, rtol=1e-5)


def test_a_cache_built_without_the_prompt_is_refused(model_and_tokenizer):
    from transformers import DynamicCache

    from pytest_kick.errors import KickError

    model, _ = model_and_tokenizer
    recovery = recovery_for(model, "prompt", tokens=8)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([[3, 4, 5]]), cache=cache, use_cache=True)  # 3 positions, no prompt
        with recovery.applied(model), pytest.raises(KickError, match="not built with the recovery applied"):
            model(input_ids=torch.tensor([[6]]), cache=cache, use_cache=True)
