"""``idp``: Inference-time Dynamic Prompting — a pool of m short soft prompts; each input uses the one it
attends to most.

Hoang et al., *Do Compressed LLMs Forget Knowledge? An Experimental Study with Practical Implications*
(2023) propose IDP; beyond the abstract their text is not public, so this is a reconstruction. What is
fixed by the description: a pool of m soft prompts trained jointly, and per input one prompt selected by
attention, the others masked. The free choices, made here:

1. **Selection pass.** On an input's first pass the decoder runs once more, no gradient, with all m
   prompts in front of the input. Each prompt sits at positions 0..L-1 and attends only within itself
   (block-diagonal), so every prompt looks to the input as it would alone and none gains from coming
   first; the input tokens attend to all prompts and, causally, to each other (padding masked).
2. **Attention mass.** For each prompt: the attention probability the input's real tokens put on its L
   positions, summed over those positions, averaged over heads, tokens and layers (all layers, eager
   attention for this pass only). The input uses the argmax.
3. **Masking the others** is done by leaving them out: the scoring/generation pass is plain prompt
   tuning with the selected prompt, which is the same computation as keeping the m prompts in the
   sequence with the others' attention masked, at a cache of L positions instead of m x L.
4. **Training** uses the same hard selection (no gradient through the choice), so each prompt learns
   from the inputs that pick it; with m = 1 there is no choice to make and IDP *is* prompt tuning with L
   tokens (same initialisation from the seed, same steps), which the tests check.
5. **Initialisation**: the pool is peft's SAMPLE_VOCAB initialisation of m x L virtual tokens.

Cost: the selection pass is one extra forward of the input with m x L prompt positions (no head), paid
once per input at its first pass; generation steps after it cost what prompt tuning with L tokens costs.
The choice depends on the whole input, so an engine must not build a shared prefix's KV cache without it
(``input_dependent``).
"""

from __future__ import annotations

from pytest_kick.compress.base import decoder_layers
from pytest_kick.errors import KickError
from pytest_kick.recover.inject import SoftPromptHooks
from pytest_kick.recover.prompt import init_prompts


def attention_modules(model) -> list:
    modules = [getattr(layer, "self_attn", None) for layer in decoder_layers(model)]
    if any(m is None for m in modules):
        raise KickError(
            f"IDP needs the attention module (self_attn) of every decoder block; {type(model).__name__} has none"
        )
    return modules


def selection_mask(m: int, L: int, keep, dtype):
    """Additive mask [B, 1, mL + T, mL + T] of the selection pass (see the module doc, choice 1)."""
    import torch

    B, T = keep.shape
    P, S = m * L, m * L + T
    device = keep.device
    index = torch.arange(P, device=device)
    block = index // L
    allowed = torch.zeros((B, S, S), dtype=torch.bool, device=device)
    allowed[:, :P, :P] = (block[:, None] == block[None, :]) & (index[None, :] <= index[:, None])
    allowed[:, P:, :P] = True
    causal = torch.ones((T, T), dtype=torch.bool, device=device).tril()
    allowed[:, P:, P:] = causal[None] & keep[:, None, :]
    return torch.zeros((B, 1, S, S), dtype=dtype, device=device).masked_fill(~allowed[:, None], torch.finfo(dtype).min)


def attention_mass(decoder, modules, pool, embeds, mask=None, positions=None):
    """Float32 [B, m]: mean attention mass from each input's real tokens to each prompt of ``pool`` [m, L, H]
    (choice 2 of the module doc), from one selection pass of ``decoder`` on ``embeds`` [B, T, H]."""
    import torch

    m, L, H = pool.shape
    B, T = embeds.shape[:2]
    P = m * L
    device = embeds.device
    keep = torch.ones((B, T), dtype=torch.bool, device=device) if mask is None else mask.bool()
    if positions is None:
        positions = torch.arange(T, device=device).expand(B, T)
    x = torch.cat([pool.to(embeds.dtype).reshape(1, P, H).expand(B, P, H), embeds], dim=1)
    pos = torch.cat([torch.arange(L, device=device).repeat(m).expand(B, P), positions + L], dim=1)
    tokens = keep.sum(1).clamp(min=1).float()  # [B]
    mass = torch.zeros((B, m), dtype=torch.float32, device=device)

    def record(module, args, output):
        weights = output[1]  # [B, heads, P + T, P + T]
        to_prompts = weights[:, :, P:, :P].float().reshape(B, weights.shape[1], T, m, L).sum(-1)  # [B, h, T, m]
        per_token = to_prompts.mean(1) * keep[..., None]  # [B, T, m]
        mass.add_(per_token.sum(1) / tokens[:, None])
        return (output[0], None, *output[2:])  # the weights are not kept

    config = decoder.config
    implementation = config._attn_implementation
    handles = [module.register_forward_hook(record) for module in modules]
    try:
        config._attn_implementation = "eager"  # the only attention that returns its probabilities
        with torch.no_grad():
            decoder(
                inputs_embeds=x, attention_mask=selection_mask(m, L, keep, x.dtype), position_ids=pos, use_cache=False
            )
    finally:
        config._attn_implementation = implementation
        for handle in handles:
            handle.remove()
    return mass / len(modules)


class DynamicPrompting:
    """A pool [m, L, H] of soft prompts; each input gets the one it attends to most."""

    name = "idp"
    input_dependent = True

    def __init__(self, spec):
        self.prompts = spec.size["prompts"]
        self.tokens = spec.size["tokens"]

    def parameter_count(self, model) -> int:
        return self.prompts * self.tokens * model.get_input_embeddings().embedding_dim

    def initial(self, model, seed: int) -> dict:
        pool = init_prompts(model, self.prompts * self.tokens, seed)
        return {"pool": pool.reshape(self.prompts, self.tokens, -1)}

    def attach(self, model, params: dict):
        pool = params["pool"]  # [m, L, H]
        decoder = model.get_decoder()
        modules = attention_modules(model) if pool.shape[0] > 1 else []
        usage = [0] * pool.shape[0]  # how many inputs chose each prompt (diagnostic: a collapsed pool shows)

        def source(embeds, mask, positions):
            if pool.shape[0] == 1:  # nothing to choose: prompt tuning's computation, op for op
                usage[0] += embeds.shape[0]
                return pool[0][None].expand(embeds.shape[0], -1, -1)
            hooks.bypass = True  # the selection pass sees the bare decoder
            try:
                choice = attention_mass(decoder, modules, pool.detach(), embeds.detach(), mask, positions).argmax(
                    -1
                )  # [B]
            finally:
                hooks.bypass = False
            for c in choice.tolist():
                usage[c] += 1
            return pool[choice]  # [B, L, H]

        hooks = SoftPromptHooks(decoder, pool.shape[1], source)
        hooks.usage = usage
        return hooks
