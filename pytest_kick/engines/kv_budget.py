"""How many waiting prompts the decode batch admits: as many as keep its key/value cache within a budget.

The decode batch's key/value cache is rows x positions x (2 x layers x key/value heads x head size x element
bytes): 46 KB a position for SmolLM2-135M in float32, so 16 rows of a 2,300-token summarization prompt and its
256 new tokens hold 1.9 GB, three times the model. A refilling batch is left-padded to its longest row, so every
row costs the widest row's positions. Before a prompt pass, the batch plans the cache it may reach: (rows after
admitting) x (the widest cache or prompt, plus the largest token budget left) positions; prompts are admitted,
longest first as they wait, while that stays within CACHE_BYTES, and always one into an empty batch. Which rows
share a batch never changes an answer (positions are explicit, padding masked: engines/decode.py), so the
budget changes memory and speed only. No torch here.

The prompt pass that admits them is bounded too: its activations grow with rows x width (attention with the square
of the width), and a pass of 10 rows of 1,700 tokens took 1.9 GB above the model in SmolLM2-135M. Admitted prompts
are fed in passes of at most PASS_TOKENS padded tokens (rows x the widest prompt of the pass), one prompt alone
when it is longer, and the rows join the batch after their pass.
"""

from __future__ import annotations

from typing import Sequence

CACHE_BYTES: int | None = 1 << 30  # the most key/value cache a decode batch plans for (None: no bound)
PASS_TOKENS: int | None = 4096  # the most padded prompt tokens one prompt pass feeds (None: no bound)


def position_bytes(model) -> int | None:
    """Bytes of key/value cache one position of one row takes in ``model`` (None when its config does not say)."""
    config = getattr(model.config, "text_config", None) or model.config
    try:
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        element = next(model.parameters()).element_size()
        return 2 * config.num_hidden_layers * heads * size * element
    except (AttributeError, TypeError, StopIteration):
        return None


def admitted(
    waiting: Sequence[int], lengths: Sequence[int], budgets: dict, live: int, width: int, left: int, per: int | None
) -> int:
    """How many of ``waiting`` (request indices, in admission order) join a batch of ``live`` rows whose cache is
    ``width`` positions wide with at most ``left`` new tokens still to come: ``lengths[i]`` is prompt i's length
    (its cache width after its prompt pass), ``budgets[i]`` its token budget; ``per`` bytes a position (None:
    no bound)."""
    if CACHE_BYTES is None or per is None:
        return len(waiting)
    n = 0
    for i in waiting:
        wide, more = max(width, lengths[i]), max(left, budgets[i])
        if (live or n) and (live + n + 1) * (wide + more) * per > CACHE_BYTES:
            break
        width, left, n = wide, more, n + 1
    return n


def prompt_passes(taken: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
    """``taken`` (request indices, in order) cut into prompt passes of at most PASS_TOKENS padded tokens each: rows
    x the longest of ``lengths`` among them; a prompt longer than that alone in its pass."""
    if PASS_TOKENS is None:
        return [list(taken)] if taken else []
    found: list[list[int]] = []
    widest = 0  # the longest prompt of the last pass
    for i in taken:
        if found and (len(found[-1]) + 1) * max(widest, lengths[i]) <= PASS_TOKENS:
            found[-1].append(i)
            widest = max(widest, lengths[i])
        else:
            found.append([i])
            widest = lengths[i]
    return found
