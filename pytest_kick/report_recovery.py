"""What recovery regained, for the session summary and the Markdown report (--kick-recover)."""

from __future__ import annotations

from pytest_kick.record import CaseRecord


def recovery_lines(records: list[CaseRecord]) -> list[str]:
    """Per recovered case: what it regained, at what size and cost, and which way the items lean."""
    lines = []
    for r in records:
        rec = r.recovery
        if not rec:
            continue
        gap = "no gap to close" if rec.get("gap_closed") is None else f"gap closed {rec['gap_closed']:+.0%}"
        ratio = "" if rec.get("ratio_to_lora") is None else f" ({rec['ratio_to_lora']:.2f}x LoRA's)"
        latency = (
            ""
            if rec.get("latency_overhead") is None
            else f", latency {rec['latency_overhead']:+.0%} s/item vs {r.compressor}@{r.ratio}"
        )
        trained = "cached, trained" if rec.get("cached") else "trained"
        lines.append(
            f"recovery {r.task} {r.model} {r.compressor}@{r.ratio}+{r.recover}: "
            f"{rec['compressed']:.3f} -> {rec['recovered']:.3f} "
            f"(dense {float('nan') if r.dense is None else r.dense:.3f}), "
            f"{gap}; {rec['reading']}; {rec['extra_parameters']:,} extra parameters{ratio}{latency}; "
            f"{trained} in {rec['training_seconds']:.0f} s{pool_usage(rec.get('prompt_usage'))}"
        )
    return lines


COLLAPSED = 0.9  # an IDP pool whose most chosen prompt takes this share of the inputs acts as one prompt


def pool_usage(usage: dict | None) -> str:
    """``; IDP prompt choices 61/20/12/7 (evaluation), 50/30/10/10 (training)``, and a warning when one prompt
    took nearly every input (the pool collapsed: IDP is then prompt tuning with one short prompt)."""
    if not usage or len(usage.get("evaluation") or usage.get("training") or []) < 2:
        return ""
    parts, collapsed = [], []
    for phase in ("evaluation", "training"):
        counts = usage.get(phase) or []
        if sum(counts):
            parts.append(f"{'/'.join(map(str, counts))} ({phase})")
            if max(counts) >= COLLAPSED * sum(counts):
                collapsed.append(f"{max(counts) / sum(counts):.0%} of {phase} inputs chose one prompt")
    warning = f" - the pool collapsed: {'; '.join(collapsed)}" if collapsed else ""
    return f"; IDP prompt choices {', '.join(parts)}{warning}" if parts else ""


def markdown_recovery(records: list[CaseRecord]) -> list[str]:
    """The recovered cases' figures as a Markdown table (none without --kick-recover)."""
    recovered = [r for r in records if r.recovery]
    if not recovered:
        return []
    lines = [
        "",
        "### Recovery",
        "",
        "| task | model | variant | method | compressed | recovered | gap closed | regained / lost (95% CI) | "
        "newly lost | extra params (x LoRA) | latency overhead | training s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recovered:
        rec = r.recovery
        interval = rec.get("regained_interval")
        regained = f"{rec['regained']} / {rec['lost']}" + (
            f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval else ""
        )
        gap = "" if rec.get("gap_closed") is None else format(rec["gap_closed"], "+.0%")
        ratio = "" if rec.get("ratio_to_lora") is None else f" ({rec['ratio_to_lora']:.2f})"
        latency = "" if rec.get("latency_overhead") is None else format(rec["latency_overhead"], "+.0%")
        lines.append(
            f"| {r.task} | {r.model} | {r.compressor}@{r.ratio} | {r.recover} | {rec['compressed']:.3f} | "
            f"{rec['recovered']:.3f} | {gap} | {regained} | {rec['newly_lost']} | {rec['extra_parameters']:,}{ratio} | "
            f"{latency} | {rec['training_seconds']:.0f} |"
        )
    return lines
