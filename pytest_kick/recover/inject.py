"""Soft prompts in front of every input, at the decoder, so any caller of the model sees them.

The engine calls the decoder (``model.get_decoder()``) directly for scoring and the whole causal LM for
generation; both pass through the decoder module, so a pair of hooks on it covers every path, and
removing the hooks leaves the model exactly as it was (no module is replaced, no weight touched). While they
are on, the decoder carries a mark (``engines.passes.ROW_INPUTS``) that tells an engine not to pack several
sequences into one row: the prompt goes in front of each row, behind a 2-D mask.

On a *first pass* (no cache, or an empty one) the pre-hook prepends P soft-prompt embeddings per row:

    inputs_embeds  [B, T, H]  ->  [B, P + T, H]     (prompt rows first, then the caller's tokens)
    attention_mask [B, T]     ->  [B, P + T]        (ones for the prompt; the caller's padding kept)
    position_ids   [B, T]     ->  [B, P + T]        (prompt at 0..P-1, the caller's positions + P)

and the post-hook drops the P prompt rows from the output, so the caller gets [B, T, H] aligned with its
own tokens. With left padding the prompt sits before the pad, and the real tokens keep consecutive
positions after it, so a row's result does not depend on its batch. On a *continuation* (the cache holds
the prompt and the earlier tokens: generation steps, or an engine's reused prefix KV cache) only the
mask gets the P ones in front and the positions shift by P. A prefix cache built on a first pass holds
the prompt too, so prefix reuse is exact for a fixed prompt; an input-dependent prompt (IDP) must see
each whole input on its first pass (``Recovery.input_dependent``).

peft's own prompt-tuning wrapper cannot serve here: it works at the PeftModel's forward, which the
engine's decoder calls never reach, and it drops caller ``position_ids`` (left padding would break).
"""

from __future__ import annotations

from typing import Callable

from pytest_kick.engines.passes import ROW_INPUTS
from pytest_kick.errors import KickError

# prompts(embeds [B, T, H], mask [B, T] | None, positions [B, T] | None) -> soft prompts [B, P, H]
PromptSource = Callable[..., "object"]


def _cache_of(kwargs: dict):
    return kwargs.get("cache", kwargs.get("past_key_values"))


class SoftPromptHooks:
    """Prepends ``source(...)`` ([B, P, H], P = ``length``) to the first pass of every call of ``decoder``."""

    def __init__(self, decoder, length: int, source: PromptSource):
        self.decoder = decoder
        self.length = length
        self.source = source
        self.bypass = False  # set while a source runs the decoder itself (IDP's selection pass)
        self._trims: list[int] = []
        self._handles = [
            decoder.register_forward_pre_hook(self._before, with_kwargs=True),
            decoder.register_forward_hook(self._after, with_kwargs=True, always_call=True),
        ]
        setattr(decoder, ROW_INPUTS, True)  # an engine must not pack several sequences into one row

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if hasattr(self.decoder, ROW_INPUTS):
            delattr(self.decoder, ROW_INPUTS)

    def _before(self, module, args, kwargs):
        import torch

        if self.bypass:
            self._trims.append(0)
            return None
        if len(args) > 1:
            raise KickError(
                "a recovered model's decoder takes its inputs by keyword (input_ids=..., attention_mask=...)"
            )
        kwargs = dict(kwargs)
        if args:
            kwargs["input_ids"] = args[0]
        ids, embeds = kwargs.pop("input_ids", None), kwargs.get("inputs_embeds")
        mask, positions = kwargs.get("attention_mask"), kwargs.get("position_ids")
        if mask is not None and mask.dim() != 2:
            raise KickError(f"soft-prompt recovery needs a 2-D attention mask [batch, keys]; got {mask.dim()}-D")
        P = self.length
        cache = _cache_of(kwargs)
        seen = cache.get_seq_length() if cache is not None else 0
        if seen == 0:  # first pass: prepend the prompt
            if embeds is None:
                embeds = module.get_input_embeddings()(ids)
            B, T = embeds.shape[:2]
            prompt = self.source(embeds, mask, positions).to(embeds.dtype)  # [B, P, H]
            kwargs["inputs_embeds"] = torch.cat([prompt, embeds], dim=1)
            if positions is not None:
                head = torch.arange(P, device=positions.device, dtype=positions.dtype).expand(B, P)
                kwargs["position_ids"] = torch.cat([head, positions + P], dim=1)
            self._trims.append(P)
        else:  # continuation: the cache already holds the prompt
            if seen < P:
                raise KickError(
                    f"a cache of {seen} positions cannot hold a soft prompt of {P}: it was not built "
                    "with the recovery applied"
                )
            if ids is not None:
                kwargs["input_ids"] = ids
            B = (ids if ids is not None else embeds).shape[0]
            if positions is not None:
                kwargs["position_ids"] = positions + P
            self._trims.append(0)
        if mask is not None:
            kwargs["attention_mask"] = torch.cat([mask.new_ones((B, P)), mask], dim=1)
        return (), kwargs

    def _after(self, module, args, kwargs, output):
        trim = self._trims.pop() if self._trims else 0
        if not trim or output is None:
            return output
        output.last_hidden_state = output.last_hidden_state[:, trim:]
        if getattr(output, "hidden_states", None) is not None:
            output.hidden_states = tuple(h[:, trim:] for h in output.hidden_states)
        return output
