"""orderings.py, the section written to docs/fidelity.md: one row per ordering (paired where the items are
the same), open vs closed book, knowledge tasks vs perplexity, and the closing paragraph."""

from __future__ import annotations

from pathlib import Path

from _orderings_plan import KNOWLEDGE
from _orderings_results import exact_paired_p, load_cases, paired_difference, per_item

ALPHA = 0.05  # two variants are separated only when an exact paired test rejects "no difference" at this level


def judged(point: float, p: float) -> str:
    """Whether ``a >= b`` holds, from the difference a - b and the exact paired test's p (the bootstrap interval
    is printed beside it, but it is too optimistic at a handful of flipped items to separate anything)."""
    if p < ALPHA and point > 0:
        return "holds (separated)"
    if p < ALPHA and point < 0:
        return "**reversed** (separated)"
    if point > 0:
        return "holds in the point estimate, not separated at this n"
    if point < 0:
        return "**reversed in the point estimate**, not separated at this n"
    return "tie, not separated at this n"


def fmt_case(c: dict | None) -> str:
    if c is None:
        return "not run"
    if c.get("compressed") is None:
        return f"{c.get('verdict') or c.get('outcome')}"
    ci = "" if c.get("drop_low") is None else f", CI [{c['drop_low'] * 100:.0f}%, {c['drop_high'] * 100:.0f}%]"
    mark = {"matching": "✓", "not matching": "✗", "inconclusive": "?"}.get(c.get("verdict"), "")
    return f"{c['compressed']:.3f} (drop {c['drop'] * 100:+.1f}%{ci}) {mark}"


OUTCOMES: list = []  # (ordering, result) of every row written, for the closing paragraph


def compare(cases, task, a, b, args, model_name) -> str:
    """One row: a >= b on task, paired."""
    row = _compare(cases, task, a, b, args, model_name)
    OUTCOMES.append((f"{task}: {a[0]}@{a[1]} ≥ {b[0]}@{b[1]}", row.rsplit("|", 2)[-2].strip()))
    return row


def _compare(cases, task, a, b, args, model_name) -> str:
    ca, cb = cases.get((task, *a)), cases.get((task, *b))
    if ca is None or cb is None or ca.get("compressed") is None or cb.get("compressed") is None:
        return f"| {task} | {a[0]}@{a[1]} ≥ {b[0]}@{b[1]} | {fmt_case(ca)} | {fmt_case(cb)} | | not measured |"
    sa, sb = per_item(ca, Path(args.cache_dir), model_name), per_item(cb, Path(args.cache_dir), model_name)
    if sa is None or sb is None:
        diff = ca["compressed"] - cb["compressed"]
        return (
            f"| {task} | {a[0]}@{a[1]} ≥ {b[0]}@{b[1]} | {fmt_case(ca)} | {fmt_case(cb)} | {diff:+.3f} | "
            f"{'holds' if diff >= 0 else 'reversed'} (point estimate; per-item scores unavailable) |"
        )
    point, low, high = paired_difference(sa, sb)
    p, test = exact_paired_p(sa, sb)
    return (
        f"| {task} | {a[0]}@{a[1]} ≥ {b[0]}@{b[1]} | {fmt_case(ca)} | {fmt_case(cb)} | "
        f"{point:+.3f} [{low:+.3f}, {high:+.3f}], {test} p={p:.3g} | {judged(point, p)} |"
    )


def first_failure(cases, task, compressor, ratios) -> str:
    for r in ratios:
        c = cases.get((task, compressor, r))
        if c is None or c.get("compressed") is None:
            return f"not measured at {r}"
        if c.get("verdict") == "not matching":
            return r
    return f"> {ratios[-1]}"


def section(args) -> str:
    OUTCOMES.clear()
    cases, meta = load_cases(args)
    if not cases:
        return "No ordering has been measured yet."
    model_name = args.model
    dense = {t: c for (t, comp, _), c in cases.items() if comp == "dense"}
    cfg = {}
    lines = [
        f"Measured by `benchmarks/orderings.py --n {args.n}"
        + (f" --ppl-n {args.ppl_n}" if args.ppl_n else "")
        + (f" --mmlu-data-dir {args.mmlu_data_dir}" if args.mmlu_data_dir else "")
        + f"` on **{model_name}** (protocol {meta.get('protocol')}, "
        f"tolerance {cfg.get('tolerance', {}).get('default', {}).get('value', 0.05) * 100:g}% relative, "
        f"--kick-stat {meta.get('stat')}, n = {args.n} items per task"
        + (f" (perplexity {args.ppl_n})" if args.ppl_n else "")
        + f", factoid QA and TriviaQA with {args.shots} "
        f"shots, MMLU 5 shots"
        + (f" on the questions of `--mmlu-data-dir` ({mmlu_subjects(args)})" if args.mmlu_data_dir else "")
        + f"; calibration {args.calib_samples} x {args.calib_seqlen} tokens of C4). The paper's figures are "
        f"Vicuna-7B's. Cells: compressed score (relative drop vs dense, its 95% bootstrap CI) ✓ matching / ✗ not. "
        f"Differences between two variants are paired over the same items (95% paired-bootstrap CI), and called "
        f"separated only when an exact paired test (McNemar on 0/1 scores, a sign test otherwise) gives p < {ALPHA}.",
        "",
        "Dense: " + ", ".join(f"{t} {c['dense']:.3f} (n={c['n']})" for t, c in sorted(dense.items())) + ".",
        "",
        "| task | ordering | first | second | difference (first − second) | result |",
        "|---|---|---|---|---|---|",
    ]
    for task in KNOWLEDGE:
        lines.append(compare(cases, task, ("rtn", "w8"), ("rtn", "w4g128"), args, model_name))
        lines.append(compare(cases, task, ("rtn", "w4g128"), ("magnitude", "0.5"), args, model_name))
        for pruner in ("wanda", "sparsegpt"):
            lines.append(compare(cases, task, (pruner, "0.5"), ("magnitude", "0.5"), args, model_name))
    # open vs closed book: different items, so compare the relative drops and their intervals
    lines += [
        "",
        "**Open book ≥ closed book** (magnitude, same sparsity; different items, so the relative drops are compared):",
        "",
        "| sparsity | closed book | open book | result |",
        "|---|---|---|---|",
    ]
    for ratio in ("0.3",):
        closed, opened = cases.get(("icrqa:closed", "magnitude", ratio)), cases.get(("icrqa:open", "magnitude", ratio))
        result = "not measured"
        if closed and opened and closed.get("drop") is not None and opened.get("drop") is not None:
            separated = (
                opened.get("drop_high") is not None
                and closed.get("drop_low") is not None
                and opened["drop_high"] < closed["drop_low"]
            )
            result = (
                "holds (separated: the intervals do not overlap)"
                if separated
                else "holds in the point estimate, intervals overlap"
                if opened["drop"] <= closed["drop"]
                else "**reversed in the point estimate**"
                + (" (separated)" if closed.get("drop_high", 1) < opened.get("drop_low", 0) else ", intervals overlap")
            )
        dense_text = " / ".join(f"dense {c['dense']:.3f}" for c in (closed, opened) if c)
        lines.append(
            f"| {ratio} | {fmt_case(closed)} | {fmt_case(opened)} | {result}"
            + (f" ({dense_text})" if dense_text else "")
            + " |"
        )
        OUTCOMES.append((f"icrqa open ≥ closed book at magnitude@{ratio}", result))
    # knowledge vs perplexity
    ratios = ("0.1", "0.3", "0.5")
    lines += [
        "",
        "**Knowledge tasks fail at lower sparsity than perplexity suggests** (magnitude):",
        "",
        "| task | " + " | ".join(ratios) + " | first not matching |",
        "|---|" + "---|" * (len(ratios) + 1),
    ]
    first = {}
    for task in ("perplexity", *KNOWLEDGE):
        first[task] = first_failure(cases, task, "magnitude", ratios)
        lines.append(
            f"| {task} | "
            + " | ".join(fmt_case(cases.get((task, "magnitude", r))) for r in ratios)
            + f" | {first[task]} |"
        )

    def level(text):
        return float(text.lstrip("> ")) + (0.01 if text.startswith(">") else 0.0)

    knowledge = [t for t in KNOWLEDGE if not first[t].startswith("not")]  # the knowledge tasks measured
    if knowledge and not first["perplexity"].startswith("not"):
        holds = all(level(first[t]) <= level(first["perplexity"]) for t in knowledge)
        strictly = any(level(first[t]) < level(first["perplexity"]) for t in knowledge)
        verdict = (
            "holds"
            if holds and strictly
            else "holds only as a tie (same first failing sparsity)"
            if holds
            else "**reversed**: perplexity flags a loss before a knowledge task does"
        )
        if len(knowledge) < len(KNOWLEDGE):
            verdict += f" (measured on {', '.join(knowledge)} only)"
        lines += ["", f"Result: {verdict}."]
        OUTCOMES.append(("knowledge tasks fail before perplexity (magnitude)", verdict))
    else:
        OUTCOMES.append(("knowledge tasks fail before perplexity (magnitude)", "not measured"))
    reversed_ = [o for o, r in OUTCOMES if "reversed" in r]
    unresolved = [o for o, r in OUTCOMES if "not separated" in r or "overlap" in r or "tie" in r]
    missing = [o for o, r in OUTCOMES if r.startswith("not measured")]
    lines += [
        "",
        "**Against the paper (Vicuna-7B).** "
        + (
            f"This 0.5B model disagrees with the paper on: {'; '.join(reversed_)}. "
            if reversed_
            else "No measured ordering is reversed. "
        )
        + (
            f"Not resolved at n = {args.n} (the interval of the difference includes 0): {'; '.join(unresolved)}. "
            if unresolved
            else ""
        )
        + (f"Not measured in this run (time): {'; '.join(missing)}. " if missing else "")
        + "The quantizer here is round-to-nearest (rtn), not the paper's GPTQ, to fit CPU time; the 0.5B "
        "model's knowledge scores sit close to chance, so small n separates few cases.",
    ]
    return "\n".join(lines)


def mmlu_subjects(args) -> str:
    """``computer security 34, ...``: the questions per subject of --mmlu-data-dir."""
    from collections import Counter

    from pytest_kick.tasks.data import read_jsonl

    path = Path(args.mmlu_data_dir) / "mmlu" / "mmlu_test.jsonl"
    if not path.exists():
        return "missing"
    subjects = Counter(r["subject"] for r in read_jsonl(path))
    return ", ".join(f"{s.replace('_', ' ')} {n}" for s, n in subjects.items())
