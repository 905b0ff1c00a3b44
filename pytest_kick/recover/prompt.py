"""``prompt``: soft-prompt tuning (Lester et al., 2021) — n trainable virtual-token embeddings in front
of every input, the model frozen.

The embeddings are peft's ``PromptEmbedding`` (``SAMPLE_VOCAB`` initialisation: n embeddings of random
vocabulary tokens, drawn from the recovery seed); they reach the model through
:mod:`pytest_kick.recover.inject`, which handles padding, positions and the KV cache for every caller.
"""

from __future__ import annotations

from pytest_kick.recover.inject import SoftPromptHooks


def init_prompts(model, count: int, seed: int):
    """Float32 tensor [count, H]: peft's SAMPLE_VOCAB initial soft prompt, reproducible from ``seed``."""
    import torch
    from peft import PromptEmbedding, PromptTuningConfig, PromptTuningInit

    words = model.get_input_embeddings()
    config = PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=count,
        token_dim=words.embedding_dim,
        num_transformer_submodules=1,
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB,
    )
    with torch.random.fork_rng(devices=[]):  # peft draws the token ids from the global CPU generator
        torch.manual_seed(seed)
        embedding = PromptEmbedding(config, words).embedding.weight
    return embedding.detach().to(device=words.weight.device, dtype=torch.float32)


class PromptTuning:
    """Soft prompt [n, H] in front of every input."""

    name = "prompt"
    input_dependent = False

    def __init__(self, spec):
        self.tokens = spec.size["tokens"]

    def parameter_count(self, model) -> int:
        return self.tokens * model.get_input_embeddings().embedding_dim

    def initial(self, model, seed: int) -> dict:
        return {"prompt": init_prompts(model, self.tokens, seed)}

    def attach(self, model, params: dict):
        """Hooks that put ``params["prompt"]`` in front of every input; ``.remove()`` takes them off."""
        prompt = params["prompt"]  # [n, H]

        def source(embeds, mask, positions):
            return prompt[None].expand(embeds.shape[0], -1, -1)

        return SoftPromptHooks(model.get_decoder(), prompt.shape[0], source)
