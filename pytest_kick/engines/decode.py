"""Greedy decoding for the local engine: a batch that refills as its rows finish.

A decode step's cost grows far slower than its number of rows (reading the weights on a CPU, launching kernels
on a GPU, is paid once per step), so a batch should stay full. Rows are admitted longest prompt first, up to
``batch_size`` at a time. A row leaves the batch when it stops (EOS, a stop string, the end of its first
line, its token budget), its cache row dropped. With ``refill``, the free places are filled from the queue
as soon as a quarter of the batch is free: the newcomers' prompts run in one pass of their own (on a copy of
the shared prefix's cache, when the group has one) and their key/value cache joins the running one, each side
padded on the left to the longer length, the padding masked out. Positions are explicit (``position_ids``),
so a row's tokens sit at the same positions whatever it is batched with, and padding never changes an answer.
Newcomers are admitted only while the key/value cache the batch may reach stays within a budget
(engines/kv_budget.py): long prompts decode in fewer rows, so the cache, not the model, does not set the memory.

Refill needs every attention layer to be plain causal attention over the whole cache, and nothing put in
front of each row (``passes.packable``: a soft prompt's decoder is marked): a sliding-window layer keeps only
its last tokens, so two of its caches cannot be joined by padding. Such models decode batch after batch,
each batch running until its last row stops.

With drafts (engines/draft.py: a compressed variant's rows carry the dense model's answer to the same prompt), a
row's prompt pass also feeds its whole draft, and each later step feeds a row's next token and up to ``k`` draft
tokens (a pass only as wide as most of its rows fill: draft.trimmed); the variant's greedy choice is read at
every fed token, the agreeing run of draft tokens is accepted and the cache columns of the rest become masked
holes (the cache is cut back to the longest accepted run). The answer is plain greedy decoding's (draft.py says
when float noise may differ); ``tally`` counts what drafting did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

from pytest_kick.engines import heap, kv_budget, kv_room, passes
from pytest_kick.engines.draft import NEAR_TIE, Cursor, Tally, trimmed
from pytest_kick.requests import GenerationRequest


@dataclass
class Rows:
    """The running batch: request indices, next input token and position per row, attention mask, cache."""

    live: list[int]
    step_ids: object  # [R, 1] token ids fed at the next step
    step_pos: object  # [R, 1] their positions
    mask: object  # [R, cache length + 1]: 1 for a real token, 0 for padding
    cache: object  # transformers DynamicCache, R rows

    def keep(self, keep: list[int]) -> None:
        """Only the rows at these places stay (their order kept)."""
        import torch

        if not keep:
            self.live = []
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)  # rows leave only after a forward pass has filled the cache
        self.step_ids, self.step_pos, self.mask = self.step_ids[index], self.step_pos[index], self.mask[index]
        self.live = [self.live[k] for k in keep]

    def join(self, other: "Rows") -> None:
        """Append ``other``'s rows; the shorter cache (and its mask) is padded on the left."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        grow_self, grow_other = width - self.mask.shape[1], width - other.mask.shape[1]
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([_pad_left(mine.keys, grow_self, 2), _pad_left(theirs.keys, grow_other, 2)])
            mine.values = torch.cat([_pad_left(mine.values, grow_self, 2), _pad_left(theirs.values, grow_other, 2)])
        self.mask = torch.cat([_pad_left(self.mask, grow_self, 1), _pad_left(other.mask, grow_other, 1)])
        self.step_ids = torch.cat([self.step_ids, other.step_ids])
        self.step_pos = torch.cat([self.step_pos, other.step_pos])
        self.live = self.live + other.live


def _pad_left(t, n: int, dim: int):
    """``t`` with ``n`` zeros in front along ``dim``."""
    import torch

    if n <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class Decoder:
    """Greedy decoding of one group of prompts that share their first ``shared`` tokens (0: none).

    ``stopped(tokens, request)`` says whether a row's new tokens end it (a stop string, its first line);
    ``on_done(n)`` is called with the number of rows that finished at each step that finished some."""

    def __init__(
        self,
        model,
        pad_id: int,
        eos_ids: set[int],
        device: str,
        batch_size: int,
        refill: bool,
        stopped: Callable[[list[int], GenerationRequest], bool],
    ):
        self.model = model
        self.pad_id = pad_id
        self.eos_ids = eos_ids
        self.device = device
        self.batch_size = max(1, batch_size)
        self.refill = refill
        self.stopped = stopped
        self.tally = Tally()  # what drafting did, over every run of this decoder
        self.ends: dict[int, int] = {}  # request index -> the EOS token its answer ended with

    def run(
        self,
        prompts: Sequence[Sequence[int]],
        requests: Sequence[GenerationRequest],
        order: Sequence[int],
        prefix=None,
        shared: int = 0,
        on_done: Callable[[int], None] | None = None,
        drafts: dict[int, Sequence[int]] | None = None,
    ) -> dict[int, list[int]]:
        """The new tokens of each prompt in ``order`` (indices into ``prompts``), EOS excluded; ``drafts`` (request
        index -> token ids) are verified instead of generated where the model agrees (engines/draft.py)."""
        import torch

        budgets = {
            i: (
                min(requests[i].max_new_tokens, requests[i].length_factor * len(prompts[i]))
                if requests[i].length_factor > 0
                else requests[i].max_new_tokens
            )
            for i in order
        }
        out: dict[int, list[int]] = {i: [] for i in order}
        queue = [i for i in order if budgets[i] > 0]
        if on_done and len(queue) < len(order):
            on_done(len(order) - len(queue))
        cursors = {i: Cursor(list(d)) for i, d in (drafts or {}).items() if d and budgets.get(i, 0) > 0}
        drafting = bool(cursors)
        self.tally.rows += len(order)
        self.tally.drafted_rows += len(cursors)
        rows: Rows | None = None
        wait = max(1, self.batch_size // 4)  # free places worth a prompt pass of newcomers (with refill)
        per = kv_budget.position_bytes(self.model)
        lengths = {i: len(prompts[i]) for i in order}
        with torch.inference_mode():
            while queue or rows is not None:
                free = self.batch_size - (len(rows.live) if rows else 0)
                join = 0
                if queue and (rows is None or (self.refill and free >= wait)):
                    live = rows.live if rows else []
                    join = kv_budget.admitted(
                        queue[:free],
                        lengths,
                        budgets,
                        len(live),
                        rows.mask.shape[1] if rows else 0,
                        max((budgets[i] - len(out[i]) for i in live), default=0),
                        per,
                    )
                if join:
                    taken, queue = queue[:join], queue[join:]
                    for part in kv_budget.prompt_passes(taken, lengths):  # bounded prompt passes
                        newcomers = self._admit(
                            part, prompts, prefix, shared, drafting, cursors, out, budgets, requests, on_done
                        )
                        if newcomers.live:
                            if rows is None:
                                rows = newcomers
                            else:
                                rows.join(newcomers)
                        heap.release()  # the pass's activations, freed, go back to the system
                    if rows is None:
                        continue
                if drafting:
                    self._drafted_step(rows, cursors, out, budgets, requests, on_done)
                    if not rows.live:
                        rows = None
                    continue
                logits = self.model(
                    input_ids=rows.step_ids,
                    attention_mask=rows.mask,
                    position_ids=rows.step_pos,
                    cache=rows.cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits
                rows.step_pos = rows.step_pos + 1
                rows.mask = torch.cat([rows.mask, rows.mask.new_ones((len(rows.live), 1))], dim=1)
                self._advance(rows, logits[:, -1, :].argmax(dim=-1), out, budgets, requests, on_done)
                if not rows.live:
                    rows = None
        return out

    def _admit(self, taken, prompts, prefix, shared, drafting, cursors, out, budgets, requests, on_done) -> Rows:
        """One prompt pass of the prompts ``taken``: their rows, each with its first token (drafted rows: the run
        of their draft the pass verified) already emitted."""
        if drafting:
            proposals = trimmed([cursors[i].propose([], budgets[i] - 1) if i in cursors else [] for i in taken])
            newcomers, *chosen = self._prefill([prompts[i] for i in taken], taken, prefix, shared, proposals)
            self._settle(newcomers, proposals, *chosen, cursors, out, budgets, requests, on_done)
        else:
            newcomers, first = self._prefill([prompts[i] for i in taken], taken, prefix, shared)
            self._advance(newcomers, first, out, budgets, requests, on_done)
        return newcomers

    def _prefill(self, prompts: list[Sequence[int]], indices: list[int], prefix, shared: int, proposals=None):
        """Rows for these prompts (left-padded among themselves) after their prompt pass, and each one's first
        new token; with ``proposals`` (draft tokens per row, right-padded after the prompts) the pass feeds them
        too and gives (rows, greedy choices, their top-two gaps) at the last prompt token and every draft token."""
        import torch
        from transformers import DynamicCache

        suffixes = [p[shared:] for p in prompts]
        width = max(len(s) for s in suffixes)
        extra = max((len(x) for x in proposals), default=0) if proposals is not None else 0
        ids = torch.full((len(prompts), width + extra), self.pad_id, dtype=torch.long)
        own = torch.zeros((len(prompts), width + extra), dtype=torch.long)
        for row, s in enumerate(suffixes):  # left padding: the last prompt token of every row is aligned
            ids[row, width - len(s) : width] = torch.tensor(list(s), dtype=torch.long)
            own[row, width - len(s) : width] = 1
        positions = shared + (own[:, :width].cumsum(-1) - 1).clamp(min=0)  # real positions (after the prefix)
        for row, x in enumerate(proposals or []):  # draft tokens follow the prompt, right-padded
            ids[row, width : width + len(x)] = torch.tensor(list(x), dtype=torch.long)
            own[row, width : width + len(x)] = 1
        positions = torch.cat([positions, positions[:, -1:] + 1 + torch.arange(extra, dtype=torch.long)], dim=1)
        mask = torch.cat([torch.ones((len(prompts), shared), dtype=torch.long), own], dim=1)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        if prefix is not None:
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(len(prompts))
        else:
            cache = DynamicCache(config=self.model.config)
        kv_room.make_roomy(cache)  # decode steps write into the cache instead of copying it (engines/kv_room.py)
        if proposals is not None:
            hidden = passes.decoder(self.model)(
                input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
            ).last_hidden_state
            rows = Rows(list(indices), None, positions[:, width - 1 : width], mask, cache)
            return (rows, *passes.choices(self.model, hidden[:, width - 1 :]))
        logits = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        ).logits
        mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
        return Rows(list(indices), None, positions[:, -1:] + 1, mask, cache), logits[:, -1, :].argmax(dim=-1)

    def _drafted_step(self, rows: Rows, cursors: dict, out, budgets, requests, on_done) -> None:
        """One step of drafted rows: each row's next token and its draft tokens, verified in one pass."""
        import torch

        proposals = trimmed(
            [cursors[i].propose(out[i], budgets[i] - len(out[i]) - 1) if i in cursors else [] for i in rows.live]
        )
        width = 1 + max(len(p) for p in proposals)
        ids = torch.full((len(rows.live), width), self.pad_id, dtype=torch.long, device=self.device)
        ids[:, :1] = rows.step_ids
        extra = torch.zeros((len(rows.live), width - 1), dtype=rows.mask.dtype, device=self.device)
        for row, p in enumerate(proposals):
            if p:
                ids[row, 1 : 1 + len(p)] = torch.tensor(p, dtype=torch.long, device=self.device)
                extra[row, : len(p)] = 1
        rows.mask = torch.cat([rows.mask, extra], dim=1)
        hidden = passes.decoder(self.model)(
            input_ids=ids,
            attention_mask=rows.mask,
            position_ids=rows.step_pos + torch.arange(width, device=self.device),
            cache=rows.cache,
            use_cache=True,
        ).last_hidden_state
        self._settle(rows, proposals, *passes.choices(self.model, hidden), cursors, out, budgets, requests, on_done)

    def _settle(self, rows: Rows, proposals, greedy, gaps, cursors: dict, out, budgets, requests, on_done) -> None:
        """After a drafted pass whose last ``greedy.shape[1]`` columns were each row's input token and draft tokens:
        accept each row's agreeing draft tokens and the model's choice after them, mask and cut back the cache
        columns of the rest, and emit the tokens (rows that stop leave the batch)."""
        import torch

        base = rows.mask.shape[1] - greedy.shape[1]  # cache columns before the verified block
        chosen, gap = greedy.tolist(), gaps.tolist()
        accepted = []
        for row, p in enumerate(proposals):
            a = 0
            while a < len(p) and p[a] == chosen[row][a]:
                a += 1
            accepted.append(a)
            rows.mask[row, base + 1 + a :] = 0
        keep = base + 1 + max(accepted)
        rows.mask = torch.cat([rows.mask[:, :keep], rows.mask.new_ones((len(accepted), 1))], dim=1)
        for layer in rows.cache.layers:
            layer.keys, layer.values = layer.keys[:, :, :keep], layer.values[:, :, :keep]
        rows.step_pos = rows.step_pos + 1 + torch.tensor(accepted, device=self.device)[:, None]
        emitted = []
        for row, (i, p, a) in enumerate(zip(rows.live, proposals, accepted)):
            emitted.append(list(p[:a]) + [chosen[row][a]])
            self.tally.proposed += len(p)
            self.tally.accepted += a
            self.tally.near_ties += sum(g < NEAR_TIE for g in gap[row][: a + 1])
            if i in cursors:
                cursors[i].settle(p, a, chosen[row][a])
        self.tally.passes += 1
        self._emit(rows, emitted, out, budgets, requests, on_done)

    def _advance(self, rows: Rows, next_ids, out, budgets, requests, on_done) -> None:
        """Record each row's new token; rows that stop leave the batch."""
        self._emit(rows, [[t] for t in next_ids.tolist()], out, budgets, requests, on_done)

    def _emit(self, rows: Rows, emitted: list[list[int]], out, budgets, requests, on_done) -> None:
        """Record each row's new tokens, in order, up to the first that stops it; rows that stop leave the batch.
        Each row's last token is its next input."""
        import torch

        keep = []
        for k, (i, tokens) in enumerate(zip(rows.live, emitted)):
            going = True
            for token in tokens:
                if token in self.eos_ids:
                    self.ends[i] = token
                    going = False
                    break
                out[i].append(token)
                self.tally.emitted += 1
                if len(out[i]) >= budgets[i] or self.stopped(out[i], requests[i]):
                    going = False
                    break
            if going:
                keep.append(k)
        rows.step_ids = torch.tensor([t[-1] for t in emitted], dtype=torch.long, device=self.device)[:, None]
        finished = len(rows.live) - len(keep)
        if finished:
            rows.keep(keep)
            if on_done:
                on_done(finished)
