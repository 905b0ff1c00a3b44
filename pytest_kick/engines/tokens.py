"""How a request becomes token ids: one set of rules for every engine that tokenizes (the local engine, and
the served engine when it sends token-id prompts), so both feed a model exactly the same tokens. No torch.

A class using it has ``self.tokenizer`` (a transformers tokenizer) and ``_start()`` (what an empty prompt
becomes: the BOS token, or a fallback the engine chooses).
"""

from __future__ import annotations

from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest


class PromptTokens:
    def _encode(self, text: str, special: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def tokenize(self, text: str) -> list[int] | None:
        """Token ids of ``text`` (special tokens included, as a prompt), or None without a tokenizer."""
        return None if getattr(self, "tokenizer", None) is None else self._encode(text)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text becomes as a prompt (special tokens included): for tasks that fit a context."""
        return [len(self._encode(t) or self._start()) for t in texts]

    def _fit(self, tokens: list[int], keep: int) -> list[int]:
        """The last ``keep`` tokens, and a BOS the tokenizer put first."""
        if len(tokens) <= keep:
            return tokens
        head = tokens[:1] if tokens and tokens[0] == self.tokenizer.bos_token_id else []
        return head + tokens[len(tokens) - keep + len(head) :]

    def _pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context tokens, continuation tokens) as the model reads the joined text: the continuation's tokens
        are what the context's tokenization leaves of the whole one's (a tokenizer may merge across the
        boundary), trailing spaces of the context moved into the continuation (lm-evaluation-harness's rule)."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            return self._start(), self._encode(continuation, special=False)
        head = self._encode(context)
        whole = self._encode(context + continuation)
        if whole[: len(head)] == head:
            return head, whole[len(head) :]
        return head, self._encode(continuation, special=False)

    def uses_chat(self, request: GenerationRequest) -> bool:
        return bool(request.messages) and bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of a request: through the chat template when it has messages and the model has one."""
        if self.uses_chat(request):
            messages = [{"role": role, "content": content} for role, content in request.messages]
            rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self._encode(rendered, special=False)  # the template already holds any BOS
        return self._encode(request.prompt) or self._start()


def rolling_windows(context: list[int], text: list[int], window: int) -> list[tuple[list[int], int]]:
    """(prompt ids, scored count) pairs covering every token of ``text``, each prompt at most ``window`` tokens
    ending with the tokens it scores: the local engine's windows. The first scores as many tokens as fit after
    at least one before them, with as much of ``context`` as fits; each later one the next ``window // 2``,
    after the tokens before them. With no context, the text's first token has nothing before it: unscored."""
    if window < 2:
        raise KickError(f"a rolling window of {window} tokens scores nothing")
    context = context[-window:]
    sequence = context + text
    start = max(len(context), 1)
    if start >= len(sequence):
        raise KickError("rolling log-likelihood of a text with no token to score")
    end = min(len(sequence), start + window - 1)
    found = []
    while start < len(sequence):
        begin = max(0, end - window)
        found.append((sequence[begin:end], end - start))
        start, end = end, min(len(sequence), end + max(1, window // 2))
    return found


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to the first of the stop strings (all of it when none occurs)."""
    cut = len(text)
    for s in stop:
        found = text.find(s)
        if found != -1:
            cut = min(cut, found)
    return text[:cut]


def line_end(text: str) -> int | None:
    """Where the first line of ``text`` that holds non-space text ends (the index of its newline), or None."""
    start = len(text) - len(text.lstrip())
    found = text.find("\n", start)
    return None if found == -1 or start == len(text) else found


def cut_output(text: str, stop: tuple[str, ...], first_line: bool = False) -> str:
    """A continuation as a request asks for it: cut at the first stop string and, with ``first_line``, at the
    end of its first line that holds text."""
    text = cut_at_stop(text, stop)
    end = line_end(text) if first_line else None
    return text if end is None else text[:end]
