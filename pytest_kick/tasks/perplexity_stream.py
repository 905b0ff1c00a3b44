"""Strict perplexity's windows: the corpus as one token sequence cut into blocks that each share one window start,
so the items of a block are scored in one pass (streamed) or each on its own (from scratch) with the same numbers.

The definition (docs/tasks.md, "Perplexity"), over the corpus's token sequence T: T is what an empty prompt
becomes (a BOS, for tokenizers that put one first) followed by each item's own tokens (its text tokenized alone,
without special tokens), so every item is a run of whole tokens. With a window of W tokens (WINDOW, or the model's
context if shorter), a minimum context of C = min(MIN_CONTEXT, W // 2) tokens and a stride S = W - C, block b holds
the positions [b*S, (b+1)*S) and its window starts at max(0, b*S - C); the token at position p >= 1 is scored
by log P(T[p] | T[start of p's block's window : p]). Every token after the first block therefore sees between C
and W - 1 tokens before it; in the first block, all the tokens before it. This is the strided evaluation of the
Hugging Face perplexity guide ("Perplexity of fixed-length models", transformers docs: a window of
``max_length`` tokens moved by ``stride``, each window scoring only its last ``stride`` tokens; the guide's
GPT-2 example uses 1024 and 512, so every scored token there has at least 512 tokens before it), with the same
512-token minimum and a longer window, so fewer tokens are computed twice: W / S = 4/3 tokens run per token
scored, against 2 for window 1024 and stride 512.

Two computations of that one definition, equal within float noise (tests/test_perplexity_stream.py):

- ``streamed``: one rolling request per block the items touch, from the block's window start to the last token
  any item needs in it; the items of a block read their tokens' log-probabilities from that one pass (the
  consecutive items of a block reuse the keys and values of the text before them);
- ``from_scratch`` (``--kick-accelerate off``): one request per (item, block) piece, from the block's window start
  to the end of the item's tokens in it, each sent in an engine call of its own, so nothing is shared.

Plain Python (no torch): positions, blocks and requests; the engine computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.requests import RollingRequest

WINDOW = 2048  # tokens a window holds at most (or the model's context, if shorter)
MIN_CONTEXT = 512  # tokens every token after the first block sees before it (the HF guide's 1024 - 512)


@dataclass(frozen=True)
class Geometry:
    window: int  # W
    context: int  # C: the minimum context
    stride: int  # S = W - C: the positions a block scores

    def block(self, position: int) -> int:
        return position // self.stride

    def start(self, block: int) -> int:
        """Where block ``block``'s window starts."""
        return max(0, block * self.stride - self.context)

    def end(self, block: int) -> int:
        return (block + 1) * self.stride


def geometry(max_length: int | None) -> Geometry:
    """The windows for a model whose context is ``max_length`` tokens (None: unknown, WINDOW is used)."""
    window = WINDOW if not max_length else min(WINDOW, max_length)
    if window < 2:
        raise KickError(f"perplexity: a model context of {window} tokens scores nothing")
    context = min(MIN_CONTEXT, window // 2)
    return Geometry(window, context, window - context)


def corpus_tokens(texts: Sequence[str], tokenize) -> tuple[list[int], list[tuple[int, int]]]:
    """(T, the [start, end) positions of each text in T): what an empty prompt becomes, then each text's tokens.

    ``tokenize(text)`` gives a prompt's token ids (special tokens included), as ``Runner.tokenize``; the tokens it
    puts in front of every text (a BOS) are taken from an empty prompt and kept once, at the start."""
    head = tokenize("")
    if head is None:
        raise KickError(
            "strict perplexity tokenizes the corpus itself and needs the model's tokenizer; this engine has none"
        )
    tokens, spans = list(head), []
    for text in texts:
        ids = tokenize(text)
        if head and ids[: len(head)] == head:
            ids = ids[len(head) :]
        spans.append((len(tokens), len(tokens) + len(ids)))
        tokens.extend(ids)
    return tokens, spans


def pieces(span: tuple[int, int], shape: Geometry) -> list[tuple[int, int, int]]:
    """(block, first, end) of each block a text's positions [start, end) fall in; position 0 is never scored."""
    first, end = max(1, span[0]), span[1]
    found = []
    while first < end:
        block = shape.block(first)
        stop = min(end, shape.end(block))
        found.append((block, first, stop))
        first = stop
    return found


def streamed(tokens: Sequence[int], spans: Sequence[tuple[int, int]], shape: Geometry, run) -> list[list[float]]:
    """Per-token log-probabilities of each span: one request per block, shared by the spans in it."""
    needed: dict[int, int] = {}  # block -> the end of the last position any span needs in it
    for span in spans:
        for block, _, stop in pieces(span, shape):
            needed[block] = max(needed.get(block, 0), stop)
    blocks = sorted(needed)
    requests = [_request(tokens, shape, b, needed[b]) for b in blocks]
    answers = dict(zip(blocks, _checked(requests, run(requests)))) if requests else {}
    found = []
    for span in spans:
        logprobs: list[float] = []
        for block, first, stop in pieces(span, shape):
            start = shape.start(block)
            logprobs.extend(answers[block][first - start - 1 : stop - start - 1])  # answer k scores position start+k+1
        found.append(logprobs)
    return found


def from_scratch(tokens: Sequence[int], spans: Sequence[tuple[int, int]], shape: Geometry, run) -> list[list[float]]:
    """Per-token log-probabilities of each span, each (span, block) piece computed alone: an engine call each."""
    found = []
    for span in spans:
        logprobs: list[float] = []
        for block, first, stop in pieces(span, shape):
            request = _request(tokens, shape, block, stop)
            [answer] = _checked([request], run([request]))
            logprobs.extend(answer[len(answer) - (stop - first) :])
        found.append(logprobs)
    return found


def _checked(requests: Sequence[RollingRequest], answers: list) -> list:
    """The answers, each one log-probability per token after a window's first (an engine that cut a window short
    would shift every position)."""
    for request, answer in zip(requests, answers):
        if len(answer) != len(request.ids) - 1:
            raise KickError(
                f"perplexity: a window of {len(request.ids)} tokens came back with {len(answer)} log-probabilities"
            )
    return answers


def _request(tokens: Sequence[int], shape: Geometry, block: int, stop: int) -> RollingRequest:
    """The window of ``block`` up to position ``stop`` (excluded), all in one window of the engine."""
    return RollingRequest("", window=shape.window, ids=tuple(tokens[shape.start(block) : stop]))
