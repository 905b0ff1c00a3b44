"""llmcompressor_compare.py, the comparison: logits with a set of weights, the figures of ours against
theirs per matrix, the solver-level section (the same statistics on both sides, one matrix at a time) and
the printed rows."""

from __future__ import annotations

import contextlib
import copy
import statistics

from _llmcompressor_ours import aligned
from _llmcompressor_ref import their_solver


def logits_with(model, weights: dict, held_out):
    import torch

    from pytest_kick.compress.base import compressible_linears

    work = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in compressible_linears(work).items():
            module.weight.copy_(weights[name].to(module.weight.dtype))
        with torch.inference_mode():
            out = work(input_ids=held_out, use_cache=False).logits.float()
    del work
    return out


def _block_of(name: str) -> int:
    """3 from ``model.layers.3.mlp.up_proj``."""
    parts = name.split(".")
    return next(int(p) for p in parts if p.isdigit())


def compare(dense: dict, ours: dict, theirs: dict, pruning: bool) -> dict:
    """Per matrix: max |ΔW|, ||ours - theirs|| / ||dense - theirs||, identical entries, mask agreement."""
    import torch

    max_abs, rel, same, agree, disagree, zeros_ours, zeros_theirs, total = [], [], [], [], 0, 0, 0, 0
    for name, d in dense.items():
        a, b = ours[name], theirs[name]
        diff = a - b
        max_abs.append(float(diff.abs().max()))
        scale = float(torch.linalg.norm(d - b))
        rel.append(float(torch.linalg.norm(diff)) / scale if scale > 0 else float("nan"))
        same.append(float((a == b).float().mean()))
        za, zb = a == 0, b == 0
        agree.append(float((za == zb).float().mean()))
        disagree += int((za != zb).sum())
        zeros_ours += int(za.sum())
        zeros_theirs += int(zb.sum())
        total += a.numel()
    blocks: dict = {}
    for name, value in zip(dense, rel):
        blocks.setdefault(_block_of(name), []).append(value)
    out = {
        "matrices": len(dense),
        "rel_dW_median_per_block": [statistics.median(v) for _, v in sorted(blocks.items())],
        "max_abs_dW": max(max_abs),
        "rel_dW_max": max(rel),
        "rel_dW_median": statistics.median(rel),
        "identical_fraction": sum(s * dense[n].numel() for s, n in zip(same, dense)) / total,
    }
    if pruning:
        out.update(
            {
                "mask_agreement_overall": 1 - disagree / total,
                "mask_agreement_min": min(agree),
                "mask_disagreements": disagree,
                "sparsity_ours": zeros_ours / total,
                "sparsity_theirs": zeros_theirs / total,
            }
        )
    return out


# --- solver level: one matrix at a time, the same statistics on both sides -------------------------------


def solver_level(label: str, model, calibration, plan, nudge: bool) -> list[dict]:
    """Per (compressor, spec, variant): ours and theirs on every matrix, fed the same dense activations."""
    import torch

    from pytest_kick.compress import pipeline
    from pytest_kick.compress.base import decoder_layers
    from pytest_kick.compress.spec import parse

    model = copy.deepcopy(model)
    nudged = 0
    if nudge:  # exact zeros of the dense weights -> 1e-30: our pruners no longer treat them as given zeros
        from pytest_kick.compress.base import compressible_linears

        with torch.no_grad():
            for module in compressible_linears(model).values():
                zeros = module.weight == 0
                nudged += int(zeros.sum())
                module.weight[zeros] = 1e-30
    layers = decoder_layers(model)
    blocks = pipeline._linears_by_block(model)
    inputs, kwargs = pipeline.capture(model, calibration)
    found = {
        key: {"rel": [], "max_abs": [], "same": 0, "flips": 0, "total": 0, "noise_rel": [], "noise_flips": 0}
        for key in plan
    }
    torch.set_grad_enabled(False)
    try:
        for index, layer in enumerate(layers):
            for key in plan:
                compressor, spec_text, variant = key
                spec = parse(spec_text)
                Solver = pipeline._solver(compressor)
                solvers, again = (
                    {rel: Solver(copy.deepcopy(module)) for rel, (_, module) in blocks[index].items()} for _ in range(2)
                )
                for feed, order in ((solvers, inputs), (again, inputs[::-1])):  # again: the noise floor
                    handles = [
                        module.register_forward_hook(pipeline._feeder(feed[rel]))
                        for rel, (_, module) in blocks[index].items()
                    ]
                    try:
                        for hidden in order:
                            layer(hidden, **kwargs[index])
                    finally:
                        for h in handles:
                            h.remove()
                for rel, solver in solvers.items():
                    module = blocks[index][rel][1]
                    dense = module.weight.detach().float().clone()
                    stats = (solver.mean_sq if compressor == "wanda" else solver.H).clone()
                    with aligned(compressor, spec) if variant == "aligned" else contextlib.nullcontext():
                        solver.apply(spec)
                        again[rel].apply(spec)
                    ours = solver.linear.weight.detach().float()
                    noise = again[rel].linear.weight.detach().float()
                    theirs = their_solver(compressor, spec, copy.deepcopy(module), stats).float()
                    entry = found[key]
                    scale = float(torch.linalg.norm(dense - theirs))
                    entry["rel"].append(float(torch.linalg.norm(ours - theirs)) / scale if scale else float("nan"))
                    entry["max_abs"].append(float((ours - theirs).abs().max()))
                    entry["same"] += int((ours == theirs).sum())
                    entry["flips"] += int(((ours == 0) != (theirs == 0)).sum())
                    entry["total"] += ours.numel()
                    scale = float(torch.linalg.norm(dense - noise))
                    entry["noise_rel"].append(float(torch.linalg.norm(ours - noise)) / scale if scale else float("nan"))
                    entry["noise_flips"] += int(((ours == 0) != (noise == 0)).sum())
            inputs = [pipeline._block_output(layer(hidden, **kwargs[index])) for hidden in inputs]
    finally:
        torch.set_grad_enabled(True)
    rows = []
    for (compressor, spec_text, variant), entry in found.items():
        row = {
            "model": label,
            "level": "solver",
            "compressor": compressor,
            "spec": spec_text,
            "variant": variant,
            "dense_zeros_nudged": nudged if nudge else None,
            "matrices": len(entry["rel"]),
            "max_abs_dW": max(entry["max_abs"]),
            "rel_dW_max": max(entry["rel"]),
            "rel_dW_median": statistics.median(entry["rel"]),
            "identical_fraction": entry["same"] / entry["total"],
            "noise_rel_dW_max": max(entry["noise_rel"]),
            "noise_rel_dW_median": statistics.median(entry["noise_rel"]),
        }
        if compressor != "gptq":
            row["mask_disagreements"], row["noise_mask_disagreements"] = entry["flips"], entry["noise_flips"]
        rows.append(row)
        print(
            f"{compressor:<9} {spec_text:<6} {variant:<8} max|dW| {row['max_abs_dW']:.2e}  rel dW max "
            f"{row['rel_dW_max']:.2e} median {row['rel_dW_median']:.2e}  identical {row['identical_fraction']:.4f}"
            + (f"  mask disagreements {entry['flips']} of {entry['total']}" if compressor != "gptq" else "")
            + f"\n{'':<25} noise floor (ours vs ours, H / norms summed in reverse order): rel dW max "
            f"{row['noise_rel_dW_max']:.2e} median {row['noise_rel_dW_median']:.2e}"
            + (f", mask disagreements {entry['noise_flips']}" if compressor != "gptq" else ""),
            flush=True,
        )
    return rows


def fmt(row: dict) -> str:
    head = f"{row['compressor']:<9} {row['spec']:<6} {row['variant']:<8}"
    if "error" in row:
        return f"{head} ERROR {row['error']}"
    text = (
        f"{head} max|dW| {row['max_abs_dW']:.2e}  rel dW max {row['rel_dW_max']:.2e} "
        f"median {row['rel_dW_median']:.2e}  identical {row['identical_fraction']:.4f}"
    )
    if "mask_agreement_overall" in row:
        text += (
            f"  mask agree {row['mask_agreement_overall']:.6f} (min matrix {row['mask_agreement_min']:.6f}, "
            f"{row['mask_disagreements']} positions)  sparsity ours/theirs "
            f"{row['sparsity_ours']:.5f}/{row['sparsity_theirs']:.5f}"
        )
    text += (
        f"\n{'':<25} max|dlogits| {row['max_abs_dlogits']:.2e} (dense-vs-theirs "
        f"{row['max_abs_dlogits_dense']:.2e}); logit error vs dense ours/theirs {row['logit_err_ours']:.4f}/"
        f"{row['logit_err_theirs']:.4f}; seconds ours/theirs {row['seconds_ours']:.1f}/"
        f"{row['seconds_theirs']:.1f}"
    )
    text += f"\n{'':<25} rel dW median per block: " + " ".join(f"{v:.1e}" for v in row["rel_dW_median_per_block"])
    if "noise_rel_dW_max" in row:
        text += (
            f"\n{'':<25} noise floor (ours vs ours, calibration order reversed): rel dW max "
            f"{row['noise_rel_dW_max']:.2e}, max|dW| {row['noise_max_abs_dW']:.2e}, max|dlogits| "
            f"{row['noise_max_abs_dlogits']:.2e}, logit error vs dense {row['noise_logit_err']:.4f}; "
            f"rel dW median per block: " + " ".join(f"{v:.1e}" for v in row["noise_rel_dW_median_per_block"])
        )
    return text
