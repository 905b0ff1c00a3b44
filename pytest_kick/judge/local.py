"""A local judge (``--kick-judge local:<model>``): a model run by the project's own engine.

The judge needs one thing from a model: ``chat(conversations) -> list[str]``. ``engine_chat`` builds it
from any engine with ``generate(requests) -> list[str]`` (engines/base.py): each conversation becomes a
``GenerationRequest`` with ``messages``, so a model with a chat template is prompted through it (the
system prompt included), and one without gets the plain-text fallback below. Decoding is the engine's
greedy decoding, at most ``max_new_tokens`` new tokens (a temperature asked by a protocol does not apply:
greedy is temperature 0). ``local_backend`` names the judge in cache keys by the model's identity
(e.g. its id and revision or weights hash) and the token cap, since both change the replies.
"""

from __future__ import annotations

from typing import Sequence

from pytest_kick.judge.client import CallableBackend, Conversation
from pytest_kick.requests import GenerationRequest

DEFAULT_MAX_NEW_TOKENS = 512  # an explanation and a verdict; LLM-KICK allowed the API judge 1024


def plain_prompt(conversation: Conversation) -> str:
    """The conversation as text for a model without a chat template: the system prompt, then
    ``USER: ... ASSISTANT:`` turns (FastChat's Vicuna layout, which the embedded models know best)."""
    system = " ".join(content for role, content in conversation if role == "system")
    text = system + "\n\n" if system else ""
    for role, content in conversation:
        if role == "user":
            text += f"USER: {content}\n"
        elif role == "assistant":
            text += f"ASSISTANT: {content}\n"
    return text + "ASSISTANT:"


def engine_chat(engine, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, progress=None):
    """``chat(conversations) -> list[str]`` answered by ``engine.generate`` (greedy, batched by the engine)."""

    def chat(conversations: Sequence[Conversation]) -> list[str]:
        requests = [
            GenerationRequest(plain_prompt(c), max_new_tokens, messages=tuple(tuple(m) for m in c))
            for c in conversations
        ]
        return [text.strip() for text in engine.generate(requests, progress=progress)]

    return chat


def local_backend(engine, model: str, identity: str, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, progress=None):
    """The judge backend for a local model: ``identity`` (model id + revision or weights hash) keys its cache."""
    return CallableBackend(
        engine_chat(engine, max_new_tokens, progress), model, endpoint=f"local:{identity}:greedy:{max_new_tokens}"
    )
