"""The served engine: a model behind an OpenAI-compatible completions API (vLLM, TGI, llama.cpp's server).

Request and reply shapes follow vLLM's server (``vllm/entrypoints/openai/completion/protocol.py`` and
``serving.py``); tests/served_replies/ pins them with replies written from that source.

- generate: ``POST /v1/completions`` with ``max_tokens``, ``stop`` and ``temperature: 0`` (greedy); the
  reply's ``choices[0].text`` is the continuation (vLLM drops the stop string from it; it is cut here
  again, which changes nothing when the server already did). A request's ``first_line`` rule has no
  equivalent in the API (a ``"\n"`` stop would also end on a leading newline): the reply is cut at the end
  of its first line of text here, so results equal the local engine's, but the server decodes up to
  ``max_tokens``.
- loglikelihood and loglikelihood_rolling: ``echo: true`` + ``logprobs: 1`` + ``max_tokens: 1`` (the
  one generated token is ignored: some servers refuse 0). vLLM then also returns ``prompt_logprobs``
  (one ``{token id: {"logprob", "rank", ...}}`` per prompt token, the first null), which is read when
  present: exact per token id, greedy = rank 1. Otherwise ``logprobs`` is read: ``token_logprobs``
  (the first null), ``top_logprobs`` (greedy = the token's log-prob is the best of them) and
  ``text_offset``.
- Prompts are token ids where the tokenizer is known (``--kick-model``'s tokenizer, loaded without
  weights), so the boundary between context and continuation is exact and the prompt is the one the
  local engine builds (the same special tokens, the same chat template). Without a tokenizer the prompt
  is text, and the continuation is found by ``text_offset``.

A multiple-choice question whose choices are one token each takes one request once that shortcut is verified
against the per-choice requests, and prompts sharing a prefix go out together (served_choice.py).

Several requests are in flight at a time (threads; a server batches them itself), answers come back in
the caller's order. A reply without what was asked for is a KickError naming the URL, never a score.
"""

from __future__ import annotations

import math
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Sequence

from pytest_kick.engines import served_choice
from pytest_kick.engines.http import Client
from pytest_kick.engines.tokens import PromptTokens, cut_output, rolling_windows
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest

Progress = Callable[[int, int], None]


class ServedEngine(PromptTokens):
    name = "openai-completions"

    def __init__(self, client: Client, tokenizer=None, model: str | None = None, concurrency: int = 8):
        self.client = client
        self.tokenizer = tokenizer
        self.concurrency = max(1, concurrency)
        card = self._model_card(model)
        self.card = card
        self.model_id = card["id"]
        self.max_model_len = card.get("max_model_len") if isinstance(card.get("max_model_len"), int) else None
        self.one_request: bool | None = None  # one request per multiple-choice question: unknown until verified
        self.choice_check: dict | None = None  # what the verification found

    @property
    def max_length(self) -> int | None:
        """The server's context in tokens (vLLM's max_model_len), for tasks that fit prompts to it; None when
        unknown or when there is no tokenizer to count with."""
        return self.max_model_len if self.tokenizer is not None else None

    @property
    def url(self) -> str:
        return self.client.base_url

    def identity(self) -> dict:
        """What identifies the served model in cache keys and reports."""
        return {
            "engine": self.name,
            "url": self.url,
            "served_model": self.model_id,
            "root": self.card.get("root"),
            "max_model_len": self.max_model_len,
        }

    def _model_card(self, wanted: str | None) -> dict:
        reply = self.client.get("models")
        cards = reply.get("data")
        if not isinstance(cards, list) or not cards or not all(isinstance(c, dict) and c.get("id") for c in cards):
            raise KickError(
                f"GET {self.client.url('models')}: the reply lists no model (expected "
                f"{{'data': [{{'id': ...}}]}}): {str(reply)[:200]}"
            )
        if wanted is None:
            return cards[0]
        for card in cards:
            if card["id"] == wanted:
                return card
        raise KickError(f"{self.url} serves {', '.join(c['id'] for c in cards)}, not {wanted}")

    # --- tokens, as the local engine makes them (engines/local.py: the same rules, so the same prompts) -------

    def _start(self) -> list[int]:
        """An empty prompt: the BOS token (or, lacking one, EOS)."""
        tok = self.tokenizer
        first = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        return [first if first is not None else 0]

    # --- the three calls --------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest], progress: Progress | None = None) -> list[str]:
        def one(request: GenerationRequest) -> str:
            if self.tokenizer is not None:
                prompt = self.prompt_ids(request)
                length = len(prompt)
            else:
                if request.length_factor > 0:
                    raise KickError(f"{self.url}: a length budget relative to the prompt needs the tokenizer")
                prompt, length = request.prompt, 0
            budget = request.max_new_tokens
            if request.length_factor > 0:
                budget = min(budget, request.length_factor * length)
            if budget <= 0:
                return ""
            body = {"prompt": prompt, "max_tokens": budget, "temperature": 0}
            if request.stop:
                body["stop"] = list(request.stop)
            text = self._choice(self._complete(body), "text")
            if not isinstance(text, str):
                raise KickError(f"POST {self.client.url('completions')}: choices[0].text is not a string")
            return cut_output(text, request.stop, request.first_line)

        return self._map(one, requests, progress)

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Progress | None = None
    ) -> list[tuple[float, bool]]:
        """One request per multiple-choice question of one-token choices once verified (served_choice.py), else
        one per request; requests sharing a prefix go out together."""
        if self.tokenizer is None:
            return self._map(self._loglikelihood_text, requests, progress)
        return served_choice.loglikelihoods(self, requests, progress)

    def _one_loglikelihood(self, request: LoglikelihoodRequest, pair) -> tuple[float, bool]:
        context, continuation = pair
        if not continuation:
            raise KickError(f"log-likelihood request with an empty continuation (context {request.context[-40:]!r})")
        sequence = context + continuation
        if self.max_length and len(sequence) > self.max_length:
            if len(continuation) >= self.max_length:
                raise KickError(
                    f"a continuation of {len(continuation)} tokens does not fit {self.url}'s "
                    f"context of {self.max_length}"
                )
            sequence = self._fit(sequence, self.max_length)
        scored = self._prompt_logprobs(sequence, len(continuation))
        return math.fsum(lp for lp, _ in scored), all(g for _, g in scored)

    def loglikelihood_rolling(
        self, requests: Sequence[RollingRequest], progress: Progress | None = None
    ) -> list[tuple[float, ...]]:
        if self.tokenizer is None and requests:
            raise KickError(
                f"{self.url}: rolling log-likelihood (perplexity) over a served model needs the "
                f"tokenizer of --kick-model"
            )

        def one(request: RollingRequest) -> tuple[float, ...]:
            context = self._encode(request.context, special=False) if request.context else []
            text = list(request.ids) if request.ids else self._encode(request.text, special=False)
            found: list[float] = []
            window = min(request.window, self.max_length or request.window)
            for ids, scored in rolling_windows(context, text, window):
                found.extend(lp for lp, _ in self._prompt_logprobs(ids, scored))
            return tuple(found)

        return self._map(one, requests, progress)

    # --- requests and replies ---------------------------------------------------------------------

    def _complete(self, body: dict) -> dict:
        reply = self.client.post("completions", {"model": self.model_id, **body})
        choices = reply.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise KickError(f"POST {self.client.url('completions')}: the reply has no choices: {str(reply)[:200]}")
        return choices[0]

    def _choice(self, choice: dict, key: str):
        if key not in choice:
            raise KickError(f"POST {self.client.url('completions')}: the reply's choice has no {key!r}")
        return choice[key]

    def _prompt_logprobs(self, ids: list[int], scored: int) -> list[tuple[float, bool]]:
        """(log-prob, is greedy) of the last ``scored`` tokens of the prompt ``ids``."""
        choice = self._complete({"prompt": ids, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1})
        where = f"POST {self.client.url('completions')}"
        prompt_logprobs = choice.get("prompt_logprobs")
        if prompt_logprobs is not None:
            return _from_prompt_logprobs(prompt_logprobs, ids, scored, where)
        logprobs = self._choice(choice, "logprobs")
        entries = _logprob_entries(logprobs, where)
        if len(entries) < len(ids):
            raise KickError(f"{where}: echo returned log-probs for {len(entries)} tokens, the prompt has {len(ids)}")
        return _checked(entries[len(ids) - scored : len(ids)], where)

    def _loglikelihood_text(self, request: LoglikelihoodRequest) -> tuple[float, bool]:
        """Without a tokenizer: the prompt is text, the continuation the tokens at or after its first character."""
        if not request.continuation:
            raise KickError(f"log-likelihood request with an empty continuation (context {request.context[-40:]!r})")
        prompt = request.context + request.continuation
        choice = self._complete({"prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1})
        where = f"POST {self.client.url('completions')}"
        logprobs = self._choice(choice, "logprobs")
        entries = _logprob_entries(logprobs, where)
        offsets = logprobs.get("text_offset") if isinstance(logprobs, dict) else None
        if not isinstance(offsets, list) or len(offsets) != len(entries):
            raise KickError(f"{where}: the reply's logprobs have no text_offset for every token")
        # offsets count the token strings, special ones included (a BOS "<s>" shifts the prompt's text)
        tokens = logprobs.get("tokens")
        shift = (
            max(0, "".join(tokens).find(prompt))
            if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
            else 0
        )
        start, end = shift + len(request.context.rstrip()), shift + len(prompt)  # trailing spaces: continuation
        picked = [e for e, offset in zip(entries, offsets) if isinstance(offset, int) and start <= offset < end]
        if not picked:
            raise KickError(f"{where}: no token of the reply starts inside the continuation {request.continuation!r}")
        scored = _checked(picked, where)
        return math.fsum(lp for lp, _ in scored), all(g for _, g in scored)

    def _map(self, one, requests, progress: Progress | None) -> list:
        """``one`` over ``requests`` with up to ``concurrency`` in flight; results in the caller's order.
        The first failure stops the rest (queued requests are not sent) and is raised."""
        total = len(requests)
        results: list = [None] * total
        if not total:
            return results
        with ThreadPoolExecutor(max_workers=min(self.concurrency, total)) as pool:
            futures = {pool.submit(one, r): k for k, r in enumerate(requests)}
            pending, done = set(futures), 0
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()
                    results[futures[future]] = future.result()
                done += len(finished)
                if progress:
                    progress(done, total)
        return results


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _from_prompt_logprobs(entries, ids: list[int], scored: int, where: str) -> list[tuple[float, bool]]:
    """vLLM's ``prompt_logprobs``: per prompt token a ``{token id: {"logprob", "rank", ...}}`` (the first null)."""
    if not isinstance(entries, list) or len(entries) != len(ids):
        size = len(entries) if isinstance(entries, list) else "no list of"
        raise KickError(f"{where}: prompt_logprobs has {size} entries for a prompt of {len(ids)} tokens")
    found = []
    for position in range(len(ids) - scored, len(ids)):
        entry = entries[position]
        info = entry.get(str(ids[position])) if isinstance(entry, dict) else None
        if not isinstance(info, dict) or not _number(info.get("logprob")):
            raise KickError(
                f"{where}: prompt_logprobs[{position}] has no log-prob of the prompt's token {ids[position]}"
            )
        rank = info.get("rank")
        if not isinstance(rank, int):
            raise KickError(f"{where}: prompt_logprobs[{position}] has no rank for token {ids[position]}")
        found.append((float(info["logprob"]), rank == 1))
    return found


def _logprob_entries(logprobs, where: str) -> list:
    """The OpenAI ``logprobs`` object as [(token log-prob, top log-probs)], checked for shape."""
    if not isinstance(logprobs, dict):
        raise KickError(f"{where}: the reply has no logprobs object (does the server support echo with logprobs?)")
    values, tops = logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
    if not isinstance(values, list) or not isinstance(tops, list) or len(values) != len(tops):
        raise KickError(f"{where}: the reply's logprobs lack token_logprobs and top_logprobs of equal length")
    return list(zip(values, tops))


def _checked(entries: list, where: str) -> list[tuple[float, bool]]:
    found = []
    for value, top in entries:
        if not _number(value) or not isinstance(top, dict) or not top or not all(_number(v) for v in top.values()):
            raise KickError(f"{where}: a scored token has no log-prob or no top log-probs ({value!r}, {top!r})")
        found.append((float(value), value >= max(top.values())))
    return found
