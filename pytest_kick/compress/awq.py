"""AWQ, activation-aware weight quantization (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization
for LLM Compression and Acceleration", MLSys 2024), one decoder block at a time.

What: a few input channels of every linear carry much larger activations than the rest ("salient"
channels); their weights matter most. AWQ scales those weight columns up by ``s`` before round-to-nearest
quantization (so they are rounded relatively more finely) and divides the operation that produces the
linear's input by ``s``, so the dense function is unchanged. ``s = mean|x|^alpha`` per input channel, with
``alpha`` searched per layer pair on calibration data to minimise the block's output error.

Layer pairs (previous op -> linears whose input channels are scaled), as in the reference
(mit-han-lab/llm-awq, ``awq/quantize/auto_scale.py``, LLaMA branch):
- input norm -> ``self_attn.q_proj, k_proj, v_proj``;
- ``self_attn.v_proj`` -> ``self_attn.o_proj`` only when ``v_proj.out_features == o_proj.in_features``
  (skipped with grouped-query attention, where each value head feeds several o_proj column blocks, and
  when the attention normalises V, e.g. a ``v_norm``);
- pre-MLP norm -> ``mlp.gate_proj, up_proj``: ``pre_feedforward_layernorm`` in Gemma 2/3's sandwich
  blocks, else ``post_attention_layernorm`` (LLaMA, Mistral, Qwen ...);
- ``mlp.up_proj`` -> ``mlp.down_proj`` (down's input is ``act(gate) * up``, linear in up's rows).

Hyper-parameters and details (the reference's):
- activation statistic: mean |x| over all tokens, per input channel (``get_act_scale``);
- ``grid = 20`` ratios ``alpha = i / 20``, i = 0..19 (alpha = 0 is plain RTN);
  ``s = clamp(x_mean ** alpha, min=1e-4)``, normalised by ``sqrt(max(s) * min(s))``;
- while searching, the pair's linears are replaced by ``Q(W * s) / s`` (same function as folding ``1/s``
  into the previous op and quantizing ``W * s``), every other linear stays dense; the smallest error wins,
  ties keep the smaller alpha;
- error: mean squared difference between the block output and the dense block output over all given
  inputs. This differs from the reference, which measures the output of the smallest module holding the
  pair (``self_attn``, ``mlp``, or the linear itself); the whole block is what the next block sees.
- the pairs are searched in the order above, each after the previous one's best scales are folded in
  (activation statistics are collected again for each pair, so they see the folded scales);
- the reference's weight clipping search (``auto_clip``) is not done.

Folding ``1/s`` into the previous op: a linear's output rows (and bias) are divided by ``s``; an RMSNorm
``x * w`` gets ``w / s``; Gemma's RMSNorm computes ``x * (1 + w)``, so ``w' = (1 + w) / s - 1``. Which form
a norm uses is probed numerically (output with ``w = 0``), not read from its class name. LayerNorm biases
are divided by ``s`` too. Gemma3's ``q_norm``/``k_norm`` act on q_proj/k_proj *outputs* and are unaffected.

Finally every ``nn.Linear`` of the block is RTN-quantized at ``spec`` (:mod:`pytest_kick.compress.grid`).
AWQ thus changes norm weights and ``v_proj``/``up_proj`` rows besides quantizing: the names of every
parameter changed (relative to the block) are returned as ``stats["changed"]``.
"""

from __future__ import annotations

import time

import torch

from pytest_kick.compress import grid as qgrid
from pytest_kick.errors import KickError


def _output(result):
    return result[0] if isinstance(result, (tuple, list)) else result


def _norm_offset(norm: torch.nn.Module) -> float:
    """1.0 when ``norm`` scales by ``1 + w`` (Gemma), 0.0 when by ``w`` (LLaMA, LayerNorm)."""
    weight = norm.weight
    saved = weight.detach().clone()
    probe = torch.randn(2, weight.shape[0], generator=torch.Generator().manual_seed(0)).to(weight.device, weight.dtype)
    try:
        with torch.no_grad():
            weight.zero_()
            bias = getattr(norm, "bias", None)
            saved_bias = None
            if isinstance(bias, torch.Tensor):
                saved_bias = bias.detach().clone()
                bias.zero_()
            out = norm(probe)
            if saved_bias is not None:
                bias.copy_(saved_bias)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    return 0.0 if float(out.abs().max()) == 0.0 else 1.0


def _pairs(block: torch.nn.Module) -> tuple[list, list]:
    """([(prev name, prev module, [linear names])], [skipped pair notes]) for a LLaMA/Gemma-style block."""
    names = {module: name for name, module in block.named_modules()}
    attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
    need = {"input_layernorm": getattr(block, "input_layernorm", None), "self_attn": attn, "mlp": mlp}
    missing = [name for name, module in need.items() if module is None]
    missing += [f"self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj") if not hasattr(attn, p)]
    missing += [f"mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj") if not hasattr(mlp, p)]
    pre_mlp = getattr(block, "pre_feedforward_layernorm", None)
    if pre_mlp is None:
        pre_mlp = getattr(block, "post_attention_layernorm", None)
    if pre_mlp is None:
        missing.append("post_attention_layernorm or pre_feedforward_layernorm")
    if missing:
        raise KickError(
            f"AWQ supports LLaMA/Gemma-style decoder blocks; {type(block).__name__} has no {', '.join(missing)}"
        )
    pairs, skipped = [], []
    pairs.append(
        (
            names[block.input_layernorm],
            block.input_layernorm,
            [names[attn.q_proj], names[attn.k_proj], names[attn.v_proj]],
        )
    )
    if getattr(attn, "v_norm", None) is not None:
        skipped.append("self_attn.v_proj -> self_attn.o_proj: the attention normalises V (v_norm)")
    elif attn.v_proj.out_features != attn.o_proj.in_features:
        skipped.append(
            f"self_attn.v_proj -> self_attn.o_proj: grouped-query attention (v_proj out "
            f"{attn.v_proj.out_features} != o_proj in {attn.o_proj.in_features})"
        )
    else:
        pairs.append((names[attn.v_proj], attn.v_proj, [names[attn.o_proj]]))
    pairs.append((names[pre_mlp], pre_mlp, [names[mlp.gate_proj], names[mlp.up_proj]]))
    pairs.append((names[mlp.up_proj], mlp.up_proj, [names[mlp.down_proj]]))
    return pairs, skipped


def _input_mean_abs(linear: torch.nn.Linear, inputs: list, run) -> torch.Tensor:
    """Mean |x| per input channel of ``linear`` over every token of every input (float32)."""
    total = torch.zeros(linear.in_features, dtype=torch.float64)
    count = [0]

    def hook(module, args, output):
        x = args[0].detach().reshape(-1, linear.in_features)
        total.add_(x.abs().double().sum(dim=0).cpu())
        count[0] += x.shape[0]

    handle = linear.register_forward_hook(hook)
    try:
        for hidden in inputs:
            run(hidden)
    finally:
        handle.remove()
    if count[0] == 0:
        raise KickError(f"AWQ: the block's forward never called the linear of shape {tuple(linear.weight.shape)}")
    return (total / count[0]).float()


def _fold(prev: torch.nn.Module, scales: torch.Tensor, offset: float) -> list[str]:
    """Divide the output of ``prev`` by ``scales``; the names (relative to prev) of the changed parameters."""
    changed = []
    with torch.no_grad():
        if isinstance(prev, torch.nn.Linear):
            weight = prev.weight
            weight.copy_((weight.float() / scales.to(weight.device)[:, None]).to(weight.dtype))
            changed.append("weight")
        else:
            weight = prev.weight
            folded = (weight.float() + offset) / scales.to(weight.device) - offset
            weight.copy_(folded.to(weight.dtype))
            changed.append("weight")
        bias = getattr(prev, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias.copy_((bias.float() / scales.to(bias.device)).to(bias.dtype))
            changed.append("bias")
    return changed


def awq_block(block: torch.nn.Module, inputs: list, forward, spec, grid: int = 20) -> dict:
    """AWQ-scale then RTN-quantize every linear of ``block`` in place; see the module docstring.

    ``inputs``: the block's input hidden states (list of [batch, seq, hidden]); ``forward(hidden)`` runs
    the block (its tuple or tensor result is accepted). ``forward`` must not grow a KV cache: capture the
    block's kwargs from a model run with ``use_cache=False`` (or drop ``past_key_values``).
    """
    started = time.perf_counter()
    if not inputs:
        raise KickError("AWQ: no calibration inputs for the block")

    def run(hidden):
        return _output(forward(hidden))

    linears = {name: m for name, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
    pairs, skipped = _pairs(block)
    alphas, losses, changed = {}, {}, set()
    with torch.no_grad():
        dense = [run(hidden).float() for hidden in inputs]
        elements = sum(out.numel() for out in dense)

        def error() -> float:
            total = 0.0
            for hidden, reference in zip(inputs, dense):
                total += float((run(hidden).float() - reference).pow(2).sum())
            return total / elements

        for prev_name, prev, names in pairs:
            offset = 0.0 if isinstance(prev, torch.nn.Linear) else _norm_offset(prev)
            members = [linears[name] for name in names]
            x_mean = _input_mean_abs(members[0], inputs, run)
            saved = [m.weight.detach().clone() for m in members]
            best = (float("inf"), None, None)
            history = []
            for step in range(grid):
                alpha = step / grid
                scales = x_mean.pow(alpha).clamp(min=1e-4)
                scales = scales / (scales.max() * scales.min()).sqrt()
                for module, original in zip(members, saved):
                    s = scales.to(original.device)[None, :]
                    trial = qgrid.quantize_matrix(original.float() * s, spec.bits, spec.group) / s
                    module.weight.copy_(trial.to(original.dtype))
                loss = error()
                history.append(loss)
                if loss < best[0]:
                    best = (loss, alpha, scales)
                for module, original in zip(members, saved):
                    module.weight.copy_(original)
            loss, alpha, scales = best
            if scales is None:
                raise KickError(f"AWQ: no finite block error while searching the scales of {prev_name}: {history}")
            changed.update(f"{prev_name}.{p}" for p in _fold(prev, scales, offset))
            for module in members:
                module.weight.copy_(
                    (module.weight.float() * scales.to(module.weight.device)[None, :]).to(module.weight.dtype)
                )
            alphas[prev_name] = alpha
            losses[prev_name] = {"rtn": history[0], "best": loss}
            del saved

        ragged = {}
        for name, module in linears.items():
            qgrid.rtn_(module.weight.data, spec.bits, spec.group)
            changed.add(f"{name}.weight")
            ragged[name] = qgrid.ragged_last_group(module.in_features, spec.group)

    return {
        "seconds": time.perf_counter() - started,
        "bits": spec.bits,
        "group": spec.group,
        "alphas": alphas,  # prev-op name -> best alpha of the pair whose scales were folded into it
        "losses": losses,  # prev-op name -> {"rtn": error at alpha 0, "best": error at the best alpha}
        "skipped": skipped,
        "changed": sorted(changed),
        "ragged_last_group": ragged,
    }
