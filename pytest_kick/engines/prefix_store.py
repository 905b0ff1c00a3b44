"""Key/value caches of prefixes kept from one log-likelihood call to the next (``LocalEngine(prefix_memory=...)``).

Within one call, engines/passes.py runs each shared prefix once. A caller that asks step by step, each call's
prompt extending the last one's, would still run the whole prompt again every call: a judge reading its scores
from probabilities (judge/probability.py) asks one score slot at a time, after the slots already forced, and
many of its prompts start with the same long article. The store keeps the caches of the prefixes it ran, most
recently used first, up to ``budget`` bytes. A new prefix starts from the stored one it shares most tokens with
(at least ``min_shared``): that cache, cut back to the shared tokens, is extended by the rest in the caller's
own scoring pass (passes.score_jobs runs the rest as a packed row's lead), so only the new tokens run. A stored
prefix the new one extends is replaced by it (the longer cache holds the shorter one).

The figures are those of a single pass over the whole prefix up to float rounding (a prefix run in pieces
multiplies in other shapes): within 1e-4 in float32 (tests/test_prefix_store.py); a 0.5B judge's scores moved
by about 1e-6. Only plain causal models use it (``passes.packable``): a sliding-window layer's cache cannot be
cut back.
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


class PrefixStore:
    """``take(model, tokens, device)``: the kept cache sharing most of ``tokens``, for the caller to extend itself
    (passes.score_jobs runs the missing tokens as a packed row's lead, passes.packed_states) and ``put`` back."""

    def __init__(self, budget: int, min_shared: int = MIN_SHARED):
        self.budget, self.min_shared = budget, min_shared
        self.entries: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "tokens_run": 0, "tokens_reused": 0}

    def take(self, model, tokens: Sequence[int], device: str):
        """(cache, have): a cache of ``tokens[:have]``, now the caller's, to extend with the rest and ``put`` back:
        the kept prefix sharing most tokens with ``tokens`` (at least ``min_shared``), else a new cache of all
        of them. For plain causal models only (``passes.packable``: score_jobs asks for no other)."""
        tokens = tuple(tokens)
        best, shared = None, 0
        for key in self.entries:
            n = common_prefix(key, tokens)
            if n > shared:
                best, shared = key, n
        if best is None or shared < self.min_shared:
            self.stats["misses"] += 1
            self.stats["tokens_run"] += len(tokens)
            return passes.prefix_cache(model, tokens, device), len(tokens)
        self.stats["hits"] += 1
        self.stats["tokens_reused"] += shared
        self.stats["tokens_run"] += len(tokens) - shared
        if shared == len(best):  # ``tokens`` start with the kept prefix: take it over (``put`` keys it anew)
            return self.entries.pop(best), shared
        return cut(self.entries[best], shared), shared

    def put(self, tokens: Sequence[int], cache) -> None:
        """Keep ``cache`` (of ``tokens``), most recent first, dropping the oldest beyond the budget."""
        tokens = tuple(tokens)
        for key in [k for k in self.entries if len(k) <= len(tokens) and tokens[: len(k)] == k]:
            del self.entries[key]  # the new cache holds every stored prefix of it
        self.entries[tokens] = cache
        self.entries.move_to_end(tokens, last=False)
        used = sum(cache_bytes(c) for c in self.entries.values())
        while len(self.entries) > 1 and used > self.budget:
            _, dropped = self.entries.popitem(last=True)
            used -= cache_bytes(dropped)
