"""The judge's account for the session: what it cost and how it went, added up over every case's record; the
discrimination check of each judged task; one line per case that lost items to judge errors."""

from __future__ import annotations

from pytest_kick.judge.errors import COUNTS as JUDGE_COUNTS
from pytest_kick.judge.errors import runs
from pytest_kick.record import CaseRecord


def judge_summary(records: list[CaseRecord]) -> dict | None:
    """What the judge cost and how it went, over every case (each item records what it spent), or None."""
    spent = [r.judge for r in records if isinstance(r.judge, dict)]
    if not spent:
        return None
    found: dict = {k: sum(int(s.get(k, 0)) for s in spent) for k in JUDGE_COUNTS}
    found["judge"] = spent[0].get("judge")
    found["read_first_time"] = 1 - found["unreadable_first"] / found["asks"] if found["asks"] else None
    found["order_disagreement_rate"] = (
        found["order_disagreements"] / found["order_pairs"] if found["order_pairs"] else None
    )
    found["errors"] = list(dict.fromkeys(e for s in spent for e in s.get("errors") or []))[:3]
    found["cases_with_judge_errors"] = sum(1 for r in records if (r.judge_errors or {}).get("left_out"))
    found["cases_without_verdict"] = sum(1 for r in records if (r.judge_errors or {}).get("exceeded"))
    found["discrimination"] = discrimination(records)
    return found


def discrimination(records: list[CaseRecord]) -> dict:
    """The judge's discrimination check of each judged task (judge/discrimination.py), by task."""
    return {r.discrimination["task"]: r.discrimination for r in records if isinstance(r.discrimination, dict)}


def discrimination_line(check: dict) -> str:
    """One task's check: preference rate overall and per degradation, position disagreement, the test's answer."""
    if not check["comparisons"]:
        return f"judge check {check['task']}: no item has a reference answer to compare with: not fit"
    kinds = ", ".join(
        f"{kind.replace('_', ' ')} {k['preference_rate']:.0%}"
        for kind, k in check["by_degradation"].items()
        if k["comparisons"]
    )
    position = check.get("position_disagreement_rate")
    return (
        f"judge check {check['task']}: prefers the reference over a degraded copy in {check['preferred']} of "
        f"{check['comparisons']} ({check['preference_rate']:.0%}; {kinds})"
        + ("" if position is None else f", orders disagree on {position:.0%}")
        + f", p = {check['p_value']:.3g}: "
        + ("fit to gate" if check["fit"] else f"not better than chance at alpha {check['alpha']:g}, cases inconclusive")
    )


def judge_lines(records: list[CaseRecord]) -> list[str]:
    """The judge's one-line account, the discrimination check of each judged task, then one line per case that lost
    items to judge errors."""
    found = judge_summary(records)
    if found is None:
        return []
    rate = found["order_disagreement_rate"]
    line = (
        f"judge {found['judge']}: {found['requests']} requests ({found['retries']} retries), "
        f"{found['cache_hits']} cache hits, tokens in/out {found['tokens_in']}/{found['tokens_out']}, "
        f"{found['item_errors']} judge errors in {found['items']} judged items ({found['reasks']} re-asks)"
        + (
            ""
            if found["read_first_time"] is None
            else f", {found['read_first_time']:.0%} of {found['asks']} judgments read at the first ask"
        )
        + ("" if rate is None else f", orders disagree on {rate:.0%} of {found['order_pairs']} pairwise items")
    )
    lines = [line] + [discrimination_line(check) for check in found["discrimination"].values()]
    for r in records:
        errors = r.judge_errors or {}
        if errors.get("left_out"):
            label = "dense" if r.is_dense else f"{r.compressor}@{r.ratio}"
            fate = "no verdict (case error)" if errors.get("exceeded") else "left out of the pairing"
            judged = runs(errors["dense"], errors.get("compressed"))
            if errors.get("compressed") is None and not r.is_dense:
                judged += ", compressed not evaluated"
            lines.append(
                f"judge errors: {r.task} {r.model} {label}: {errors['left_out']} of {errors['items']} "
                f"items {fate} ({judged})"
            )
    if found["errors"]:
        lines.append("judge error e.g.: " + "; ".join(found["errors"]))
    return lines
