"""The local engine: a transformers causal LM in this process, answering the three calls of
:class:`pytest_kick.engines.base.Engine`. It knows batching and caching, never what a task means.

- Log-likelihoods (``loglikelihood``, ``loglikelihood_rolling``) become scoring jobs (tokens to feed,
  positions to read): jobs whose tokens are a prefix of another's share its pass, shared prefixes found in
  the tokens (a few-shot block, a subject header) run once and their key/value cache is reused
  (``reuse_prefix``), and the vocabulary head runs only at the scored positions (engines/passes.py).
- Generation is greedy, longest prompts first, left-padded with explicit positions, so a prompt gets the
  same tokens whatever else shares its batch (tested: batch 1 and 16 give identical outputs); it stops at
  EOS, at a stop string, at the end of the first line of text (``first_line``) or at the token budget
  (``max_new_tokens``, ``length_factor`` x prompt tokens). The head runs at the last position only, and
  rows that have stopped leave the batch (their cache rows dropped), so a batch costs what its rows still need.
- Requests longer than the model's context (``max_position_embeddings``) keep their last tokens, and a BOS
  the tokenizer put first; a continuation that alone does not fit is an error.
"""

from __future__ import annotations

from typing import Sequence

from pytest_kick.engines.base import Progress
from pytest_kick.engines.plan import Group, Job, Leaf, group
from pytest_kick.engines.tokens import PromptTokens, cut_output, line_end, rolling_windows
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest


def _batches(order: list[int], size: int):
    for start in range(0, len(order), size):
        yield order[start:start + size]


class LocalEngine(PromptTokens):
    name = "local"

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 16, dtype: str | None = None,
                 reuse_prefix: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype or str(getattr(model, "dtype", "")).replace("torch.", "")
        self.reuse_prefix = reuse_prefix
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = {e for e in [*eos, tokenizer.eos_token_id] if e is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.max_length = getattr(model.config, "max_position_embeddings", None) or None
        self.last_plan: dict = {}  # how the last log-likelihood call ran (engines/passes.py score_jobs)

    # --- tokens --------------------------------------------------------------------------------

    def _start(self) -> list[int]:
        """What an empty prompt becomes: the BOS token (or, lacking one, EOS), so the model has a position 0."""
        bos = self.tokenizer.bos_token_id
        return [bos if bos is not None else min(self.eos_ids, default=self.pad_id)]

    # --- log-likelihood ------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[tuple[float, bool]]:
        """(sum of log-probabilities of the continuation tokens, whether greedy decoding would produce them)."""
        jobs = []
        for r in requests:
            context, continuation = self._pair(r.context, r.continuation)
            if not continuation:
                raise KickError(f"log-likelihood request with an empty continuation (context {r.context[-40:]!r})")
            sequence = context + continuation
            if self.max_length and len(sequence) > self.max_length:
                if len(continuation) >= self.max_length:
                    raise KickError(f"a continuation of {len(continuation)} tokens does not fit the model's "
                                    f"context of {self.max_length}")
                sequence = self._fit(sequence, self.max_length)
            first = len(sequence) - len(continuation) - 1  # the state at position t predicts token t + 1
            jobs.append(Job(tuple(sequence[:-1]), first, tuple(continuation)))
        answers = self._score(jobs, progress)
        return [(sum(lp for lp, _ in a), all(g for _, g in a)) for a in answers]

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[tuple[float, ...]]:
        """Per-token log-probabilities of each text, in windows of at most ``window`` tokens (see RollingRequest).

        The first window scores as many of the text's tokens as fit after at least one token before them,
        with as much of the context as fits; each later window scores the next ``window // 2`` tokens,
        in a window of ``window`` tokens ending with them."""
        jobs, owners = [], []
        for n, r in enumerate(requests):
            context = self._encode(r.context, special=False) if r.context else []
            text = list(r.ids) if r.ids else self._encode(r.text, special=False)
            for prompt, scored in rolling_windows(context, text, min(r.window, self.max_length or r.window)):
                jobs.append(Job(tuple(prompt[:-1]), len(prompt) - scored - 1, tuple(prompt[-scored:])))
                owners.append(n)
        answers = self._score(jobs, progress, owners, len(requests))
        found: list[list[float]] = [[] for _ in requests]
        for n, a in zip(owners, answers):
            found[n].extend(lp for lp, _ in a)
        return [tuple(f) for f in found]

    def _score(self, jobs: list[Job], progress: Progress | None, owners: list[int] | None = None,
               total: int | None = None):
        """Answer scoring jobs; progress counts requests (a rolling request may be several jobs: ``owners``)."""
        from pytest_kick.engines.passes import score_jobs

        done = [0]
        total = len(jobs) if total is None else total

        def advance(n: int) -> None:
            done[0] += n
            if progress:
                progress(done[0] if owners is None else min(total, done[0] * total // max(1, len(jobs))), total)

        self.last_plan = {}
        return score_jobs(self.model, jobs, self.batch_size, self.device, self.pad_id, self.reuse_prefix, advance,
                          self.last_plan)

    # --- generation ----------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        """Greedy continuations (new text only, special tokens dropped), cut at each request's stop strings."""
        tokens = self.generate_ids(requests, progress)
        return [cut_output(self._decode(t), r.stop, r.first_line) for t, r in zip(tokens, requests)]

    def generate_ids(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[list[int]]:
        """The new token ids of each request (EOS excluded), in the caller's order.

        Prompts that share a long token prefix (few-shot examples, a system prompt) have it run once; each
        batch of them continues a copy of its key/value cache. The plan depends on the prompts only, not
        on the batch size."""
        from pytest_kick.engines.passes import prefix_cache

        encoded = [self.prompt_ids(r) for r in requests]
        leaves = [Leaf(tuple(p), [i], len(p) - 1) for i, p in enumerate(encoded)]
        groups = group(leaves) if self.reuse_prefix else [Group(0, tuple(range(len(leaves))))]
        outputs: list[list[int]] = [[] for _ in requests]
        done = 0
        for g in groups:
            cache = prefix_cache(self.model, encoded[g.leaves[0]][:g.shared], self.device) if g.shared else None
            order = sorted(g.leaves, key=lambda i: (-len(encoded[i]), i))
            for batch in _batches(order, self.batch_size):
                new = self._generate_batch([encoded[i] for i in batch], [requests[i] for i in batch], cache, g.shared)
                for i, tokens in zip(batch, new):
                    outputs[i] = tokens
                done += len(batch)
                if progress:
                    progress(done, len(requests))
        return outputs

    def _generate_batch(self, prompts: list[list[int]], requests: list[GenerationRequest], prefix=None,
                        shared: int = 0) -> list[list[int]]:
        """Greedy decoding of a batch; with ``prefix``, the cache of the ``shared`` tokens every prompt starts with."""
        import copy

        import torch
        from transformers import DynamicCache

        budgets = [
            min(r.max_new_tokens, r.length_factor * len(p)) if r.length_factor > 0 else r.max_new_tokens
            for r, p in zip(requests, prompts)
        ]
        suffixes = [p[shared:] for p in prompts]
        width = max(len(p) for p in suffixes)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        own = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(suffixes):  # left padding: the last prompt token of every row is aligned
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            own[row, width - len(p):] = 1
        positions = shared + (own.cumsum(-1) - 1).clamp(min=0)  # [B, T] real positions (after the prefix)
        mask = torch.cat([torch.ones((len(prompts), shared), dtype=torch.long), own], dim=1)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        new_tokens: list[list[int]] = [[] for _ in prompts]
        finished = [b <= 0 for b in budgets]
        live = list(range(len(prompts)))  # the rows still decoding, in batch order
        step_ids, step_pos = ids, positions
        with torch.inference_mode():
            if prefix is not None:
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(prompts))
            else:
                cache = DynamicCache(config=self.model.config)
            for _ in range(max(budgets)):
                keep = [k for k, row in enumerate(live) if not finished[row]]
                if not keep:
                    break
                if len(keep) < len(live):  # drop the rows that stopped from the batch and its cache
                    index = torch.tensor(keep, dtype=torch.long, device=mask.device)
                    if cache.get_seq_length() > 0:
                        cache.batch_select_indices(index)
                    step_ids, step_pos, mask = step_ids[index], step_pos[index], mask[index]
                    live = [live[k] for k in keep]
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                                 cache=cache, use_cache=True, logits_to_keep=1)
                next_ids = out.logits[:, -1, :].argmax(dim=-1)  # [live rows]
                for row, token in zip(live, next_ids.tolist()):
                    if token in self.eos_ids:
                        finished[row] = True
                        continue
                    new_tokens[row].append(token)
                    if len(new_tokens[row]) >= budgets[row] or self._hit_stop(new_tokens[row], requests[row]):
                        finished[row] = True
                step_ids = next_ids[:, None]
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        return new_tokens

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _hit_stop(self, tokens: list[int], request: GenerationRequest) -> bool:
        if request.first_line and line_end(self._decode(tokens)) is not None:
            return True
        if not request.stop:
            return False
        text = self._decode(tokens[-16:])  # a stop string completes within the last few tokens
        return any(s in text for s in request.stop)
