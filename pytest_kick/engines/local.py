"""The local engine: a transformers causal LM in this process, answering the three calls of
:class:`pytest_kick.engines.base.Engine`. It knows batching and caching, never what a task means.

- Log-likelihoods (``loglikelihood``, ``loglikelihood_rolling``) become scoring jobs (tokens to feed,
  positions to read): jobs whose tokens are a prefix of another's share its pass, shared prefixes found in
  the tokens (a few-shot block, a subject header) run once and their key/value cache is reused
  (``reuse_prefix``), and the vocabulary head runs only at the scored positions (engines/passes.py). With
  ``prefix_memory`` (bytes) the caches are also kept for later calls (engines/prefix_store.py): a caller asking
  step by step on a growing prompt runs only each step's new tokens.
- Generation is greedy, longest prompts first, left-padded with explicit positions, so a prompt gets the
  same tokens whatever else shares its batch (tested: batch 1 and 16 give identical outputs); it stops at
  EOS, at a stop string, at the end of the first line of text (``first_line``) or at the token budget
  (``max_new_tokens``, ``length_factor`` x prompt tokens). The head runs at the last position only; rows
  that have stopped leave the batch and waiting prompts take their places (engines/decode.py), so the batch
  stays full and a step's cost is shared by as many rows as the batch size allows.
- Dense-drafted decoding (engines/draft.py): with ``drafts`` set (the dense model's answers, by prompt), a
  compressed variant's rows verify the dense answer to their prompt instead of generating it token by token;
  with ``record`` set, the answers generated are kept there (the dense run). ``tally`` counts what drafting did.
- Requests longer than the model's context (``max_position_embeddings``) keep their last tokens, and a BOS
  the tokenizer put first; a continuation that alone does not fit is an error.
"""

from __future__ import annotations

from typing import Sequence

from pytest_kick.engines import passes
from pytest_kick.engines.base import Progress
from pytest_kick.engines.decode import Decoder
from pytest_kick.engines.draft import Drafts, Tally
from pytest_kick.engines.plan import Group, Job, Leaf, group
from pytest_kick.engines.prefix_store import PrefixStore
from pytest_kick.engines.tokens import PromptTokens, cut_output, line_end, rolling_windows
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest


class LocalEngine(PromptTokens):
    name = "local"

    def __init__(
        self,
        model,
        tokenizer,
        device: str = "cpu",
        batch_size: int = 16,
        dtype: str | None = None,
        reuse_prefix: bool = True,
        refill: bool = True,
        prefix_memory: int = 0,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype or str(getattr(model, "dtype", "")).replace("torch.", "")
        self.reuse_prefix = reuse_prefix
        self.refill = refill  # generation: waiting prompts take the places of stopped rows (where the model allows)
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = {e for e in [*eos, tokenizer.eos_token_id] if e is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.max_length = getattr(model.config, "max_position_embeddings", None) or None
        self.last_plan: dict = {}  # how the last log-likelihood call ran (engines/passes.py score_jobs)
        # prefixes' key/value caches kept between log-likelihood calls, up to this many bytes (0: none kept)
        self.prefix_store = PrefixStore(prefix_memory) if prefix_memory > 0 else None
        self.drafts: Drafts | None = None  # answers to verify instead of generate (a compressed variant's run)
        self.record: Drafts | None = None  # where generated answers are kept (a dense run: drafts of its variants)
        self.tally = Tally()  # what drafting did, summed over generate calls (the runtime takes it per case)

    # --- tokens --------------------------------------------------------------------------------

    def _start(self) -> list[int]:
        """What an empty prompt becomes: the BOS token (or, lacking one, EOS), so the model has a position 0."""
        bos = self.tokenizer.bos_token_id
        return [bos if bos is not None else min(self.eos_ids, default=self.pad_id)]

    # --- log-likelihood ------------------------------------------------------------------------

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Progress | None = None
    ) -> list[tuple[float, bool]]:
        """(sum of log-probabilities of the continuation tokens, whether greedy decoding would produce them)."""
        jobs = []
        for r in requests:
            context, continuation = self._pair(r.context, r.continuation)
            if not continuation:
                raise KickError(f"log-likelihood request with an empty continuation (context {r.context[-40:]!r})")
            sequence = context + continuation
            if self.max_length and len(sequence) > self.max_length:
                if len(continuation) >= self.max_length:
                    raise KickError(
                        f"a continuation of {len(continuation)} tokens does not fit the model's "
                        f"context of {self.max_length}"
                    )
                sequence = self._fit(sequence, self.max_length)
            first = len(sequence) - len(continuation) - 1  # the state at position t predicts token t + 1
            jobs.append(Job(tuple(sequence[:-1]), first, tuple(continuation)))
        answers = self._score(jobs, progress)
        return [(sum(lp for lp, _ in a), all(g for _, g in a)) for a in answers]

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], progress: Progress | None = None
    ) -> list[tuple[float, ...]]:
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

    def _score(
        self, jobs: list[Job], progress: Progress | None, owners: list[int] | None = None, total: int | None = None
    ):
        """Answer scoring jobs; progress counts requests (a rolling request may be several jobs: ``owners``)."""
        done = [0]
        total = len(jobs) if total is None else total

        def advance(n: int) -> None:
            done[0] += n
            if progress:
                progress(done[0] if owners is None else min(total, done[0] * total // max(1, len(jobs))), total)

        self.last_plan = {}
        return passes.score_jobs(
            self.model,
            jobs,
            self.batch_size,
            self.device,
            self.pad_id,
            self.reuse_prefix,
            advance,
            self.last_plan,
            self.prefix_store,
        )

    # --- generation ----------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        """Greedy continuations (new text only, special tokens dropped), cut at each request's stop strings."""
        tokens = self.generate_ids(requests, progress)
        return [cut_output(self._decode(t), r.stop, r.first_line) for t, r in zip(tokens, requests)]

    def generate_ids(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[list[int]]:
        """The new token ids of each request (EOS excluded), in the caller's order.

        Prompts that share a long token prefix (few-shot examples, a system prompt) have it run once; each
        pass of their prompts continues a copy of its key/value cache. The batch refills as rows stop
        (engines/decode.py). The plan depends on the prompts only, not on the batch size."""
        encoded = [self.prompt_ids(r) for r in requests]
        leaves = [Leaf(tuple(p), [i], len(p) - 1) for i, p in enumerate(encoded)]
        groups = group(leaves) if self.reuse_prefix else [Group(0, tuple(range(len(leaves))))]
        draftable = self.drafts is not None and passes.packable(self.model)  # a cache cut back must be plain
        decoder = Decoder(
            self.model,
            self.pad_id,
            self.eos_ids,
            self.device,
            self.batch_size,
            refill=self.refill and passes.packable(self.model),
            stopped=self._hit_stop,
        )
        outputs: list[list[int]] = [[] for _ in requests]
        done = [0]

        def finished(n: int) -> None:
            done[0] += n
            if progress:
                progress(done[0], len(requests))

        for g in groups:
            cache = passes.prefix_cache(self.model, encoded[g.leaves[0]][: g.shared], self.device) if g.shared else None
            order = sorted(g.leaves, key=lambda i: (-len(encoded[i]), i))
            drafts = {i: self.drafts.get(encoded[i]) for i in order} if draftable else None
            for i, tokens in decoder.run(encoded, requests, order, cache, g.shared, finished, drafts).items():
                outputs[i] = tokens
        self.tally.add(decoder.tally)
        if self.record is not None:  # with the EOS that ended an answer: a draft that has it ends a row in one pass
            for i, tokens in enumerate(outputs):
                self.record.put(encoded[i], tokens + ([decoder.ends[i]] if i in decoder.ends else []))
        return outputs

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _hit_stop(self, tokens: list[int], request: GenerationRequest) -> bool:
        if request.first_line and line_end(self._decode(tokens)) is not None:
            return True
        if not request.stop:
            return False
        text = self._decode(tokens[-16:])  # a stop string completes within the last few tokens
        return any(s in text for s in request.stop)
