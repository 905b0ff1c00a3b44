"""Scored forward passes of a transformers causal LM, reading only what is asked.

The base model gives hidden states; the vocabulary head (``model.get_output_embeddings()``, with the
config's final logit soft-capping where it has one: Gemma 2/3) runs on the gathered positions that are
scored, a bounded number of rows at a time: never a ``[batch, length, vocab]`` tensor. Prefix sharing is
planned in :mod:`pytest_kick.engines.plan`; here a group's prefix runs once into a ``DynamicCache`` that
each pass of its members extends, positions continuing after the prefix.

A pass packs members back to back in one row (``plan.pack``: up to ``PACK_TOKENS`` tokens), each attending
to the prefix and to its own earlier tokens only (a 4-D mask; its positions restart after the prefix), so
no compute goes to padding and the prefix's cache is read by every member without being copied per row.
Models with sliding-window layers (Gemma 2/3, Mistral) get their masks from transformers instead: their
members run right-padded, a batch of rows at a time, on a copy of the prefix's cache per row.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

from pytest_kick.engines.plan import PACK_TOKENS, Group, Job, Leaf, fold, group, pack

ROW_INPUTS = "kick_row_inputs"  # set on a decoder whose every row gets something in front: no packed rows
HEAD_ELEMENTS = 1 << 24  # logits computed at once: rows x vocabulary (64 MB in float32)


def decoder(model):
    """The module that maps token ids to final hidden states (LlamaModel, Gemma3TextModel, Qwen2Model ...)."""
    return model.get_decoder()


def softcap(model) -> float | None:
    config = model.config
    return getattr(config, "final_logit_softcapping", None) or getattr(
        getattr(config, "text_config", None), "final_logit_softcapping", None
    )


def head_logits(model, hidden):
    """Logits [K, V] (float32) of hidden states [K, H], as the model's own forward computes them."""
    logits = model.get_output_embeddings()(hidden).float()
    cap = softcap(model)
    if cap:
        logits = (logits / cap).tanh() * cap
    return logits


def choices(model, hidden):
    """(greedy token, gap between the top two logits), each [R, W], of hidden states [R, W, H], the head run a
    bounded number of positions at a time: how a drafted pass reads the model's choice at every fed token."""
    import torch

    rows, width, size = hidden.shape
    flat = hidden.reshape(rows * width, size)
    step = max(1, HEAD_ELEMENTS // model.get_output_embeddings().weight.shape[0])
    tokens = torch.empty(rows * width, dtype=torch.long, device=hidden.device)
    gaps = torch.empty(rows * width, dtype=torch.float32, device=hidden.device)
    for start in range(0, rows * width, step):
        top = head_logits(model, flat[start : start + step]).topk(2, dim=-1)
        tokens[start : start + step] = top.indices[:, 0]
        gaps[start : start + step] = top.values[:, 0] - top.values[:, 1]
    return tokens.view(rows, width), gaps.view(rows, width)


def read_positions(model, hidden, reads: Sequence[tuple[int, int]]) -> list[tuple[float, bool]]:
    """(log-probability of the target, is it the argmax) for each (row, target) of ``reads``, the head run once
    per row of hidden states [U, H], a bounded number of rows at a time."""
    import torch

    vocab = model.get_output_embeddings().weight.shape[0]
    step = max(1, HEAD_ELEMENTS // vocab)
    slots = torch.tensor([r for r, _ in reads], dtype=torch.long, device=hidden.device)
    targets = torch.tensor([t for _, t in reads], dtype=torch.long, device=hidden.device)
    logprobs = torch.empty(len(reads), dtype=torch.float32, device=hidden.device)
    greedy = torch.empty(len(reads), dtype=torch.bool, device=hidden.device)
    for start in range(0, hidden.shape[0], step):
        logits = head_logits(model, hidden[start : start + step])  # [k, V]
        here = ((slots >= start) & (slots < start + step)).nonzero()[:, 0]
        local = slots[here] - start
        logprobs[here] = logits[local, targets[here]] - logits.logsumexp(-1)[local]
        greedy[here] = logits.argmax(-1)[local] == targets[here]
    return list(zip(logprobs.tolist(), greedy.tolist()))


def prefix_cache(model, tokens: Sequence[int], device: str):
    """The key/value cache of ``tokens`` (one row)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    ids = torch.tensor([list(tokens)], dtype=torch.long, device=device)
    with torch.inference_mode():
        decoder(model)(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True)
    return cache


def packable(model) -> bool:
    """Whether every attention layer is plain causal attention, so a packed pass's own 4-D mask is all it needs,
    and nothing goes in front of each row (a soft prompt, recover/inject.py, needs one sequence per row)."""
    get_decoder = getattr(model, "get_decoder", None)
    if get_decoder is not None and getattr(get_decoder(), ROW_INPUTS, False):
        return False
    config = model.config
    config = getattr(config, "text_config", None) or config
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return getattr(config, "sliding_window", None) is None


def hidden_states(model, rows: list[Sequence[int]], pad_id: int, device: str, cache=None, offset: int = 0):
    """Final hidden states [B, W, H] of right-padded ``rows``, continuing ``cache`` (one row of ``offset``
    tokens, copied to every row) when given."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), offset + width), dtype=torch.long)
    mask[:, :offset] = 1
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(list(tokens), dtype=torch.long)
        mask[row, offset : offset + len(tokens)] = 1
    positions = torch.arange(offset, offset + width, dtype=torch.long).expand(len(rows), width)
    past = None
    if cache is not None:
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(len(rows))
    out = decoder(model)(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        cache=past,
        use_cache=past is not None,
    )
    return out.last_hidden_state


def packed_states(model, segments: list[Sequence[int]], device: str, cache=None, offset: int = 0, lead=()):
    """Final hidden states [1, N, H] of ``segments`` run back to back in one row, each seeing the ``offset``
    tokens of ``cache`` and its own earlier tokens, at positions ``offset``, ``offset + 1`` ... The cache is left
    unchanged, except that ``lead`` tokens, when given, run first at positions ``offset`` ... (every segment sees
    them, and its positions follow theirs) and are kept in the cache: one pass both extends a kept prefix
    (engines/prefix_store.py) and scores the segments after it. The lead's own states are not returned."""
    import torch

    lead = list(lead)
    lengths = [len(s) for s in segments]
    ids = torch.tensor([lead + [t for s in segments for t in s]], dtype=torch.long, device=device)
    owner = torch.repeat_interleave(torch.arange(len(segments), device=device), torch.tensor(lengths, device=device))
    starts = torch.tensor([0] + lengths[:-1], device=device).cumsum(0)
    local = torch.arange(owner.shape[0], device=device) - starts[owner]  # position inside its segment
    positions = torch.cat([torch.arange(len(lead), device=device), len(lead) + local]) + offset
    if len(segments) == 1:  # plain causal attention: transformers' own mask (or none: a fused causal kernel)
        mask = torch.ones((1, offset + ids.shape[1]), dtype=torch.long, device=device)
    else:
        width = offset + ids.shape[1]
        allowed = torch.zeros((ids.shape[1], width), dtype=torch.bool, device=device)
        allowed[:, :offset] = True  # the prefix: seen by all
        allowed[: len(lead), offset : offset + len(lead)] = torch.ones(len(lead), len(lead), device=device).tril() > 0
        allowed[len(lead) :, offset : offset + len(lead)] = True  # the lead: seen by every segment
        allowed[len(lead) :, offset + len(lead) :] = (owner[:, None] == owner[None, :]) & (
            local[None, :] <= local[:, None]
        )
        dtype = next(model.parameters()).dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)
        mask = mask[None, None]
    saved = [(layer.keys, layer.values) for layer in cache.layers] if cache is not None else []
    kept = offset + len(lead)
    try:
        out = decoder(model)(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions[None],
            cache=cache,
            use_cache=cache is not None,
        )
    except BaseException:
        for layer, (keys, values) in zip(cache.layers if cache is not None else [], saved):
            layer.keys, layer.values = keys, values
        raise
    for layer, (keys, values) in zip(cache.layers if cache is not None else [], saved):
        if lead:  # the update concatenated the pass's keys: keep the lead's, drop the segments'
            layer.keys, layer.values = layer.keys[..., :kept, :], layer.values[..., :kept, :]
        else:  # the prefix's tensors are intact
            layer.keys, layer.values = keys, values
    return out.last_hidden_state[:, len(lead) :]


def score_jobs(
    model,
    jobs: Sequence[Job],
    batch_size: int,
    device: str,
    pad_id: int,
    reuse_prefix: bool = True,
    progress: Callable[[int], None] | None = None,
    stats: dict | None = None,
    store=None,
) -> list[list[tuple[float, bool]]]:
    """(log-probability, is greedy) of every target of every job, in job order.

    ``progress(n)`` is called with the number of jobs answered by each batch; ``stats`` (a dict) receives
    how the jobs ran: jobs, passes (sequences run), groups (shared prefixes), tokens_fed, tokens_alone
    (what running every job on its own would feed), forward_passes, tokens_computed (fed tokens plus padding,
    prefixes excluded). ``store`` (engines/prefix_store.py), when given, keeps a packable model's shared prefixes'
    caches for later calls."""
    import torch

    leaves = fold(jobs)
    groups = group(leaves) if reuse_prefix else [Group(0, tuple(range(len(leaves))))]
    packed = packable(model)
    if stats is not None:
        stats.update(
            jobs=len(jobs),
            passes=len(leaves),
            groups=sum(1 for g in groups if g.shared),
            tokens_alone=sum(len(j.tokens) for j in jobs),
            tokens_fed=sum(g.shared + sum(len(leaves[i].tokens) - g.shared for i in g.leaves) for g in groups),
        )
    answers: list[list[tuple[float, bool]]] = [[] for _ in jobs]
    with torch.inference_mode():
        for g in groups:
            shared = leaves[g.leaves[0]].tokens[: g.shared]
            cache, have = None, 0
            if g.shared and store is not None and packed:  # the kept prefix; the rest runs as the first pass's lead
                cache, have = store.take(model, shared, device)
            elif g.shared:  # an unpackable model keeps nothing between calls
                cache, have = prefix_cache(model, shared, device), g.shared
            members = sorted(g.leaves, key=lambda i: (-len(leaves[i].tokens), i))
            if packed:
                batches = [
                    [members[k] for k in row]
                    for row in pack([len(leaves[i].tokens) - g.shared for i in members], PACK_TOKENS)
                ]
            else:
                batches = [members[start : start + batch_size] for start in range(0, len(members), batch_size)]
            for chosen in batches:
                batch = [leaves[i] for i in chosen]
                segments = [leaf.tokens[g.shared :] for leaf in batch]
                if packed:
                    states = packed_states(model, segments, device, cache, have, shared[have:])
                    have = g.shared
                    places = [(0, sum(len(s) for s in segments[:k])) for k in range(len(batch))]
                else:
                    states = hidden_states(model, segments, pad_id, device, cache, g.shared)
                    places = [(k, 0) for k in range(len(batch))]
                _read(model, states, batch, places, jobs, g.shared, answers)
                if stats is not None:
                    stats["forward_passes"] = stats.get("forward_passes", 0) + 1
                    stats["tokens_computed"] = stats.get("tokens_computed", 0) + states.shape[0] * states.shape[1]
                if progress:
                    progress(sum(len(leaf.jobs) for leaf in batch))
            if cache is not None and store is not None and packed:
                store.put(shared, cache)
    return answers


def _read(
    model, states, batch: list[Leaf], places: list[tuple[int, int]], jobs: Sequence[Job], offset: int, answers
) -> None:
    """Gather the scored positions of the batch's jobs (each position once) and read their targets; leaf k's
    token at position p (p >= offset) has its state at ``states[row, column + p - offset]``, (row, column) =
    ``places[k]``."""
    import torch

    slot: dict[tuple[int, int], int] = {}
    rows, cols, reads = [], [], []  # reads: (job, slot, target)
    for leaf, (row, column) in zip(batch, places):
        for j in leaf.jobs:
            job = jobs[j]
            for k, target in enumerate(job.targets):
                where = (row, column + job.first + k - offset)
                if where not in slot:
                    slot[where] = len(rows)
                    rows.append(where[0])
                    cols.append(where[1])
                reads.append((j, slot[where], target))
    picked = states[torch.tensor(rows, device=states.device), torch.tensor(cols, device=states.device)]  # [U, H]
    found = read_positions(model, picked, [(s, t) for _, s, t in reads])
    for (j, _, _), answer in zip(reads, found):
        answers[j].append(answer)
