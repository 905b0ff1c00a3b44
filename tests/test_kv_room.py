"""Decode steps write into the key/value cache instead of copying it (engines/kv_room.py): the same tokens as
transformers' own concatenating layers, plain, refilled, drafted and after a shared prefix, with one buffer
serving ROOM steps (tiny-random-llama)."""

import pytest

from pytest_kick.engines import kv_room
from pytest_kick.engines.draft import Drafts
from pytest_kick.engines.local import LocalEngine
from pytest_kick.requests import GenerationRequest

PREFIX = "You are a careful assistant. Answer in one line. " * 3
PROMPTS = [f"{PREFIX}Question number {i}: what comes after {i}? " + "x " * (i % 5) for i in range(10)]
BUDGETS = [3, 9, 1, 12, 70, 5, 2, 7, 11, 4]  # one row outlives a buffer's room; rows stop at different steps
ROOMY = kv_room.make_roomy


def _generate(model, tokenizer, roomy: bool, monkeypatch, drafts=None, batch_size: int = 4, tally=None):
    monkeypatch.setattr(kv_room, "make_roomy", ROOMY if roomy else (lambda cache: cache))
    engine = LocalEngine(model, tokenizer, "cpu", batch_size)
    if drafts is not None:
        engine.drafts = drafts
    found = engine.generate_ids([GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)])
    if tally is not None:
        tally.append(engine.tally)
    return found


@pytest.mark.parametrize("batch_size", [1, 4])
def test_roomy_layers_give_the_tokens_of_concatenating_ones(tiny, monkeypatch, batch_size):
    model, tokenizer = tiny
    plain = _generate(model, tokenizer, False, monkeypatch, batch_size=batch_size)
    assert [len(t) for t in plain] == BUDGETS  # the random model emits no EOS this early
    assert _generate(model, tokenizer, True, monkeypatch, batch_size=batch_size) == plain


def test_drafted_decoding_with_roomy_layers_is_unchanged(tiny, monkeypatch):
    """A variant verifying its dense model's answers feeds several tokens a step and cuts the rejected ones off
    the cache: the roomy layer's view is cut, and the next step writes over the cut positions."""
    import copy

    import torch

    model, tokenizer = tiny
    variant = copy.deepcopy(model)
    with torch.no_grad():  # a perturbed variant: it agrees with its dense model for a while, then drifts
        weight = variant.model.layers[0].mlp.down_proj.weight
        weight.add_(0.5 * weight.std() * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    drafts = Drafts()
    dense = LocalEngine(model, tokenizer, "cpu", 4)
    dense.record = drafts
    dense.generate_ids([GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)])
    plain = _generate(variant, tokenizer, False, monkeypatch)
    assert plain != _generate(model, tokenizer, False, monkeypatch)  # the variant drifted: drafts get rejected
    tallies = []
    for roomy in (False, True):
        assert _generate(variant, tokenizer, roomy, monkeypatch, drafts=drafts, tally=tallies) == plain
    assert all(0 < t.accepted < t.proposed for t in tallies)  # drafts were accepted, and some rejected


def test_a_buffer_serves_room_steps_before_it_grows(tiny):
    """One row decoding 3 x ROOM tokens: its layers allocate a new buffer about every ROOM steps, not every step."""
    import torch
    from transformers import DynamicCache

    model, tokenizer = tiny
    cache = kv_room.make_roomy(DynamicCache(config=model.config))
    ids = torch.tensor([tokenizer(PROMPTS[0]).input_ids])
    seen = set()
    with torch.inference_mode():
        model(input_ids=ids, cache=cache, use_cache=True)
        for _ in range(3 * kv_room.ROOM):
            model(input_ids=ids[:, -1:], cache=cache, use_cache=True)
            seen.add(cache.layers[0].buffers[0].data_ptr())
    assert cache.get_seq_length() == ids.shape[1] + 3 * kv_room.ROOM
    assert len(seen) <= 4  # the prompt's buffer and one a ROOM steps (a plain layer: a new tensor every step)


def test_sliding_window_layers_keep_their_own_update():
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    cache = DynamicCache()
    cache.layers = [DynamicSlidingWindowLayer(sliding_window=8), DynamicLayer()]
    kv_room.make_roomy(cache)
    assert type(cache.layers[0]) is DynamicSlidingWindowLayer
    assert type(cache.layers[1]) is not DynamicLayer and isinstance(cache.layers[1], DynamicLayer)


def test_rows_leaving_drop_the_buffer_at_once(tiny):
    """Rows leaving the batch replace every layer's keys: the old buffers go then, not at the next step (holding
    them kept two caches per layer at once)."""
    import torch
    from transformers import DynamicCache

    model, tokenizer = tiny
    cache = kv_room.make_roomy(DynamicCache(config=model.config))
    ids = torch.tensor([tokenizer(PROMPTS[0]).input_ids] * 2)
    with torch.inference_mode():
        model(input_ids=ids, cache=cache, use_cache=True)
        layer = cache.layers[0]
        full = layer.keys
        layer.keys = full[:, :, :-1]  # a drafted step's rejected token cut off: the buffer stays
        assert layer.buffers is not None
        layer.keys = full
        cache.batch_select_indices(torch.tensor([1]))
        assert all(layer.buffers is None for layer in cache.layers)
        model(input_ids=ids[1:, -1:], cache=cache, use_cache=True)
    assert all(layer.buffers is not None for layer in cache.layers)
