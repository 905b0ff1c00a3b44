"""The training loop: only the added parameters learn; the compressed model is frozen and left as it was.

Objective: next-token cross-entropy over every position of each training window (the soft prompt's
positions are not scored: the decoder hooks drop them). AdamW (no weight decay) at a constant learning
rate; each step takes the next ``batch`` windows, so ``steps x batch`` windows are each seen once, in the
order drawn from the seed. The model runs in eval mode (no dropout) and its ``requires_grad`` flags and
train/eval mode are restored afterwards.
"""

from __future__ import annotations

import time
from typing import Callable

Progress = Callable[[int, int], None]  # (steps done, steps total)


def token_loss(model, ids):
    """Mean next-token cross-entropy (float32 scalar) of ``ids`` [B, T] under ``model``."""
    import torch

    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits  # [B, T, V]
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())


def held_out_loss(model, ids, batch: int = 4) -> float:
    """Mean next-token cross-entropy over the windows ``ids`` [N, T], every window weighing the same."""
    import torch

    device = model.get_input_embeddings().weight.device
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch].to(device)
            total += token_loss(model, chunk).item() * len(chunk)
    return total / len(ids)


def train(
    model, method, initial: dict, windows, steps: int, batch: int, lr: float, progress: Progress | None = None
) -> tuple[dict, dict]:
    """(trained parameters, stats) — ``initial`` {name: tensor} trained for ``steps`` on ``windows`` [N, T]."""
    import torch

    device = model.get_input_embeddings().weight.device
    params = {
        k: torch.nn.Parameter(v.detach().clone().to(device=device, dtype=torch.float32)) for k, v in initial.items()
    }
    frozen = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
    attached = method.attach(model, params)
    losses = []
    started = time.perf_counter()
    try:
        model.eval()
        optimizer = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.0)
        for step in range(steps):
            ids = windows[(step * batch) % len(windows) :][:batch].to(device)
            loss = token_loss(model, ids)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if progress:
                progress(step + 1, steps)
    finally:
        attached.remove()
        for name, p in model.named_parameters():
            p.requires_grad_(frozen.get(name, False))
        model.train(was_training)
    seconds = time.perf_counter() - started
    trained = {k: v.detach() for k, v in params.items()}
    return trained, {"seconds": seconds, "losses": losses, "usage": list(getattr(attached, "usage", []))}
