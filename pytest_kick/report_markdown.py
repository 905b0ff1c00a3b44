"""The Markdown summary of a session (--kick-markdown), for a CI job page: one table row per case, the
recovered cases, the searches, then the run's settings and the judge's account."""

from __future__ import annotations

from pytest_kick.formats import bound_text, ratio_key, reading_text
from pytest_kick.record import CaseRecord, Verdict
from pytest_kick.report import choices_lines, dense_cell
from pytest_kick.report_judge import judge_lines
from pytest_kick.report_recovery import markdown_recovery


def markdown(records: list[CaseRecord], meta: dict) -> str:
    """A Markdown summary for a CI job page: one table row per case, then the failures' evidence."""
    icon = {
        Verdict.MATCHING: "✅ matching",
        Verdict.NOT_MATCHING: "❌ not matching",
        Verdict.INCONCLUSIVE: "⚠️ inconclusive",
        Verdict.UNDECIDED: "➖ undecided (budget ran out)",
        Verdict.SANE: "✅ sane",
        Verdict.BROKEN: "❌ broken",
        Verdict.JUDGE_ERROR: "⛔ judge errors, no verdict",
    }
    lines = [f"## pytest-kick: {meta.get('title', 'compressed vs dense')}", ""]
    lines += [
        "| task | model | compressor | ratio | dense | compressed | drop | 95% CI of drop | lost / kept / gained "
        "| items used | bound at the stop | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value, fmt):
        return "" if value is None else format(value, fmt)

    for r in sorted(
        (r for r in records if not r.is_search),
        key=lambda r: (r.task, r.model, not r.is_dense, r.compressor or "", ratio_key(r.ratio or ""), r.recover or ""),
    ):
        interval = ""
        if r.drop_low is not None:
            interval = f"[{r.drop_low * 100:.1f}%, {r.drop_high * 100:.1f}%]"
        flips = "" if r.lost is None else f"{r.lost} / {r.kept} / {r.gained}"
        lines.append(
            f"| {r.task} | {r.model} | {r.row} | {r.ratio or ''} | "
            f"{dense_cell(r)} | {num(r.compressed, '.3f')} | "
            f"{'' if r.drop is None else format(r.drop * 100, '.1f') + '%'} | {interval} | {flips} | "
            f"{_used(r)} | {_bound(r)} | {icon.get(r.verdict, r.verdict or r.outcome)} |"
        )
    lines += markdown_recovery(records)
    searches = [r for r in records if r.search]
    if searches:
        lines += [
            "",
            "### Largest matching level (--kick-search)",
            "",
            "| task | model | compressor | dense | largest matching | largest with every lower level matching "
            "| levels evaluated |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sorted(searches, key=lambda r: (r.task, r.model, r.compressor)):
            s = r.search
            lines.append(
                f"| {r.task} | {r.model} | {r.compressor} | {num(r.dense, '.3f')} "
                f"(n={r.n}) | {reading_text(s['largest_matching'])} | "
                f"{reading_text(s['largest_safe'])} | {s['evaluations']} |"
            )
    for key in ("protocol", "stat", "data"):
        if meta.get(key):
            lines.append(f"\n{key}: {meta[key]}")
    lines += [f"\n{line}" for line in choices_lines(records) + judge_lines(records)]
    return "\n".join(lines) + "\n"


def _used(r: CaseRecord) -> str:
    return "" if r.items_used is None or r.is_dense else f"{r.items_used} / {r.budget}"


def _bound(r: CaseRecord) -> str:
    """The sequential bound at the stop: the side that decided, both for an undecided case."""
    if r.bound_low is None or r.bound_high is None or r.verdict is None:
        return ""
    return bound_text(r.verdict.value, r.bound_low, r.bound_high, r.alpha)
