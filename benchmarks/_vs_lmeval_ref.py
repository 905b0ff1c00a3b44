"""vs_lmeval.py, the reference side: lm-evaluation-harness's ``HFLM`` on our items (log-likelihoods for MMLU,
``generate_until`` for TriviaQA, with our first-line rule as a stopping criterion). Every lm-eval import is
inside a function: this module imports without it."""

from __future__ import annotations

from pathlib import Path


def lmeval_model(weights_dir: Path):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(weights_dir), device="cpu", dtype="float32", batch_size=1)


def lmeval_mmlu(lm, batch_size: int, pairs: list[list[tuple[str, str]]]) -> list[str]:
    """Predicted letters from lm-eval's log-likelihoods of each item's four (context, continuation) pairs."""
    from lm_eval.api.instance import Instance

    lm.batch_size_per_gpu = batch_size
    flat = [pair for item in pairs for pair in item]
    requests = [Instance("loglikelihood", {}, pair, n) for n, pair in enumerate(flat)]
    scores = [s for s, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    return ["ABCD"[max(range(4), key=lambda k: scores[4 * q + k])] for q in range(len(pairs))]


def first_line_criterion(tokenizer, initial: int):
    """A transformers stopping criterion: a row is done once its new text has a newline after non-space text."""
    import torch
    from transformers import StoppingCriteria

    from pytest_kick.engines.tokens import line_end

    class FirstLineStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, initial:], skip_special_tokens=True)
            return torch.tensor([line_end(t) is not None for t in texts], dtype=torch.bool, device=input_ids.device)

    return FirstLineStop()


def lmeval_generate(lm, batch_size: int, requests) -> list[str]:
    import lm_eval.models.huggingface as hf
    from lm_eval.api.instance import Instance

    lm.batch_size_per_gpu = batch_size
    instances = [
        Instance(
            "generate_until",
            {},
            (r.prompt, {"until": list(r.stop), "max_gen_toks": r.max_new_tokens, "do_sample": False}),
            n,
        )
        for n, r in enumerate(requests)
    ]
    if not any(r.first_line for r in requests):
        return lm.generate_until(instances, disable_tqdm=True)
    if not all(r.first_line for r in requests):
        raise SystemExit("a mix of first-line and other generation requests: not one lm-eval call")
    own = hf.stop_sequences_criteria

    def with_first_line(tokenizer, stop, initial, batch):
        criteria = own(tokenizer, stop, initial, batch)
        criteria.append(first_line_criterion(tokenizer, initial))
        return criteria

    hf.stop_sequences_criteria = with_first_line  # lm-eval's HFLM._model_generate builds its criteria with it
    try:
        return lm.generate_until(instances, disable_tqdm=True)
    finally:
        hf.stop_sequences_criteria = own
