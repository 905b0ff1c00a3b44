"""Key/value caches of prefixes kept from one log-likelihood call to the next (``LocalEngine(prefix_memory=...)``).

Within one call, engines/passes.py runs each shared prefix once. A caller that asks step by step, each call's
prompt extending the last one's, would still run the whole prompt again every call: a judge reading its scores
from probabilities (judge/probability.py) asks one score slot at a time, after the slots already forced, and
many of its prompts start with the same long article. The store keeps the caches of the prefixes it ran, most
recently used first, up to ``budget`` bytes. A new prefix starts from the stored one it shares most tokens with
(at least ``min_shared``): that cache, cut back to the shared tokens, is extended by the rest, so only the new
tokens run. A stored prefix the new one extends is replaced by it (the longer cache holds the shorter one).

The figures are those of a single pass over the whole prefix up to float rounding (a prefix run in two pieces
multiplies in other shapes): max |Δ log p| stays near 1e-6 in float32 (tests/test_prefix_store.py). Only plain
causal models use it (``passes.packable``): a sliding-window layer's cache cannot be cut back.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Sequence

from pytest_kick.engines import passes
from pytest_kick.engines.plan import common_prefix

MIN_SHARED = 32  # tokens: a shorter common start is not worth copying a cache for


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def cut(cache, length: int):
    """A copy of ``cache`` holding its first ``length`` positions (the stored cache is left as it is)."""
    saved = [(layer.keys, layer.values) for layer in cache.layers]
    try:
        for layer, (keys, values) in zip(cache.layers, saved):
            layer.keys, layer.values = keys[..., :length, :].clone(), values[..., :length, :].clone()
        return copy.deepcopy(cache)
    finally:
        for layer, (keys, values) in zip(cache.layers, saved):
            layer.keys, layer.values = keys, values


def extend(model, cache, tokens: Sequence[int], offset: int, device: str) -> None:
    """Run ``tokens`` at positions ``offset``, ``offset + 1`` ... after the ``offset`` tokens in ``cache``,
    appending their keys and values to it."""
    import torch

    if not tokens:
        return
    ids = torch.tensor([list(tokens)], dtype=torch.long, device=device)
    positions = torch.arange(offset, offset + len(tokens), dtype=torch.long, device=device)[None]
    mask = torch.ones((1, offset + len(tokens)), dtype=torch.long, device=device)
    with torch.inference_mode():
        passes.decoder(model)(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)


class PrefixStore:
    """``cache(model, tokens, device)``: the key/value cache of ``tokens`` (one row), from the store where it can be.

    The returned cache belongs to the store: callers must leave it unchanged (passes.score_jobs copies it before
    a padded batch and restores it after a packed one)."""

    def __init__(self, budget: int, min_shared: int = MIN_SHARED):
        self.budget, self.min_shared = budget, min_shared
        self.entries: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "tokens_run": 0, "tokens_reused": 0}

    def cache(self, model, tokens: Sequence[int], device: str):
        tokens = tuple(tokens)
        if not passes.packable(model):
            self.stats["misses"] += 1
            self.stats["tokens_run"] += len(tokens)
            return passes.prefix_cache(model, tokens, device)
        best, shared = None, 0
        for key in self.entries:
            n = common_prefix(key, tokens)
            if n > shared:
                best, shared = key, n
        if best is None or shared < self.min_shared:
            self.stats["misses"] += 1
            self.stats["tokens_run"] += len(tokens)
            found = passes.prefix_cache(model, tokens, device)
        else:
            self.stats["hits"] += 1
            self.stats["tokens_reused"] += shared
            self.stats["tokens_run"] += len(tokens) - shared
            if shared == len(best) == len(tokens):  # asked again as it is
                found = self.entries[best]
            elif shared == len(best):  # the new prefix extends the stored one: it takes the stored one over
                found = self.entries.pop(best)
            else:
                found = cut(self.entries[best], shared)
            extend(model, found, tokens[shared:], shared, device)
        self._put(tokens, found)
        return found

    def _put(self, tokens: tuple[int, ...], cache) -> None:
        for key in [k for k in self.entries if len(k) <= len(tokens) and tokens[: len(k)] == k]:
            del self.entries[key]  # the new cache holds every stored prefix of it
        self.entries[tokens] = cache
        self.entries.move_to_end(tokens, last=False)
        used = sum(cache_bytes(c) for c in self.entries.values())
        while len(self.entries) > 1 and used > self.budget:
            _, dropped = self.entries.popitem(last=True)
            used -= cache_bytes(dropped)
