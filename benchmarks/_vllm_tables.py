"""The tables benchmarks/served_vllm.py prints: export formats served against local, and requests per MMLU
question before and after the one-request path."""

from __future__ import annotations


def same(a: list, b: list) -> str:
    return f"{sum(x == y for x, y in zip(a, b))}/{len(a)}"


def listed(values: list[float]) -> str:
    return ", ".join("-" if v is None else f"{v:.2f}" for v in values)


def print_tables(args, rows: list[dict], timings: list[dict], gates: list, built: dict) -> None:
    print(
        f"\n## {args.model}: export formats served by vLLM 0.32.0 (CPU, {args.dtype}) against the local engine "
        f"(float32), MMLU 5-shot, {args.limit} questions; interleaved rounds: dense {args.rounds}, variants "
        f"{args.variant_rounds} (0: the letters of the variant's first local evaluation, one served pass)\n"
    )
    print(
        "| format | written as | vLLM loads it | served letters = local round 1 (per round) "
        "| local letters = local round 1 | local s/question (per round) | served s/question (per round) "
        "| requests/question |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["loads"]:
            print(f"| {r['format']} | {r['written']} | no: {r['reason'][:160]} | | | | | |")
            continue
        first = r["local"][0]["outputs"]
        served = ", ".join(same(first, s["outputs"]) for s in r["served"])
        print(
            f"| {r['format']} | {r['written']} | yes | {served} | "
            f"{', '.join(same(first, loc['outputs']) for loc in r['local'])} | "
            f"{listed([loc['seconds'] for loc in r['local']])} | {listed([s['seconds'] for s in r['served']])} | "
            f"{listed([s['requests'] / len(first) for s in r['served']])} |"
        )
    print(
        "\nfirst local evaluation of each format (model load for dense; compression and --kick-export for a "
        "variant), not in the s/question above: "
        + ", ".join(f"{form} {seconds:.0f} s" for form, seconds in built.items())
    )
    print(f"\n## {args.model} on the dense vLLM server: one request per choice (before) vs per question (after)\n")
    print(
        "| round | path | requests | requests/question | s/question | letters = local | letters = 'before' round 1 "
        "| one request used |"
    )
    print("|---|---|---|---|---|---|---|---|")
    local = next((r["local"][0]["outputs"] for r in rows if r["format"] == "dense" and r.get("local")), None)
    reference = timings[0]["outputs"] if timings else []
    for t in timings:
        n = len(t["outputs"])
        print(
            f"| {t['round']} | {t['how']} | {t['requests']} | {t['requests'] / n:.2f} | {t['seconds']:.2f} | "
            f"{same(local, t['outputs']) if local else ''} | {same(reference, t['outputs'])} | {t['one_request']} |"
        )
    checks = [t["check"] for t in timings if t.get("check")]
    for k, check in enumerate(checks, 1):
        print(f"verification {k} of the one-request path (its first question asked both ways): {check}")
    print("\n## The served pair gated with --kick-engine openai-completions\n")
    for form, line in gates:
        print(f"- {form}: {line}")
