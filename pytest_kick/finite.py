"""Non-finite numbers are errors, never results: a NaN score compares false with everything, so a gate
that met one would pass or fail by accident. Every number that reaches a verdict is checked here first.

A judged task is the one exception: its scorer marks an item the judge failed on with NaN (a judge error,
counted and left out of the pairing by judge/errors.py). Infinity is never allowed.
"""

from __future__ import annotations

import math
from typing import Sequence

from pytest_kick.errors import KickError


class NonFinite(KickError):
    """A score, a log-likelihood or a weight that is NaN or infinite; ``request`` is the engine request whose
    answer was, when one was."""

    request = None


def bad(value) -> bool:
    return isinstance(value, (int, float)) and not math.isfinite(value)


def check_scores(scores: Sequence[float], item_ids: Sequence, what: str, allow_nan: bool = False) -> None:
    """NonFinite naming ``what`` (model, task, variant) and the first bad item (NaN passes with ``allow_nan``)."""
    refused = [k for k, s in enumerate(scores) if bad(s) and not (allow_nan and math.isnan(s))]
    if refused:
        k = refused[0]
        more = f" (and {len(refused) - 1} more of {len(scores)} items)" if len(refused) > 1 else ""
        raise NonFinite(
            f"{what}: item {item_ids[k]} scored {scores[k]}{more}; a non-finite score is an error, "
            f"never a verdict: check the model's weights and dtype (float16 overflows?)"
        )


def check_answers(kind: str, answers: Sequence, requests: Sequence, engine: str) -> None:
    """NonFinite when an engine answered a log-likelihood request with NaN or infinity (a damaged model, an
    overflowing dtype); it names the request by the start of its text. A multiple-choice task would otherwise
    take the largest of some NaNs, an arbitrary choice that scores like a real one."""
    for k, answer in enumerate(answers):
        values = answer[:1] if kind == "loglikelihood" else answer
        if any(bad(v) for v in values):
            request = requests[k]
            text = request.context if kind == "loglikelihood" else (request.text or request.context)
            err = NonFinite(
                f"engine {engine!r} gave a non-finite {kind} ({next(v for v in values if bad(v))}) for "
                f"request {k + 1} of {len(requests)} ({' '.join(str(text).split())[:60]!r}); "
                f"check the model's weights and dtype (float16 overflows?)"
            )
            err.request = request
            raise err


def check_weights(model, what: str, remedy: str = "restore or rebuild the model") -> None:
    """NonFinite naming the first parameter of ``model`` (a torch module) holding NaN or infinity."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            # a sum is NaN or infinite when an element is (one read, no mask the size of the weight); only then,
            # or when finite values overflow the sum, is every element checked
            if not param.is_floating_point() or bool(torch.isfinite(param.sum(dtype=torch.float32))):
                continue
            count = int((~torch.isfinite(param)).sum())
            if count:
                raise NonFinite(
                    f"{what}: weight {name} holds {count} NaN or infinite value(s) of {param.numel()}; "
                    f"the weights are damaged: {remedy}"
                )


def check_forward(model, tokenizer, device: str, what: str) -> None:
    """NonFinite when a forward pass on a few tokens gives NaN or infinite logits (weights that are finite can
    still overflow in a narrow dtype)."""
    import torch

    ids = tokenizer("The quick brown fox jumps over the lazy dog.", return_tensors="pt")["input_ids"][:, :16]
    with torch.no_grad():
        logits = model(input_ids=ids.to(device)).logits
    if not bool(torch.isfinite(logits).all()):
        raise NonFinite(
            f"{what}: a forward pass on a few tokens gives NaN or infinite logits; the model cannot "
            f"be evaluated (weights damaged, or a dtype too narrow: try --kick-dtype float32)"
        )
