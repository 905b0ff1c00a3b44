"""Results a person reads at a glance: the end-of-session table, and the same as JSON.

Records are the ``kick_*`` user properties of each item's report (so they cross xdist workers),
with the prefix removed.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from pytest_kick.files import atomic_write
from pytest_kick.gate import INCONCLUSIVE, MATCHING, NOT_MATCHING

STYLE = {MATCHING: "green", NOT_MATCHING: "bold red", INCONCLUSIVE: "yellow", "sane": "green", "broken": "bold red"}


def record_from(user_properties) -> dict | None:
    record = {key[5:]: value for key, value in user_properties if isinstance(key, str) and key.startswith("kick_")}
    return record if "task" in record else None


def _cell(record: dict) -> str:
    status = record.get("verdict")
    style = STYLE.get(status, "")
    if record.get("compressed") is None:
        text = "error" if status is None else status
        return f"[{style}]{text}[/]" if style else text
    drop = record.get("drop") or 0.0
    mark = {MATCHING: "✓", NOT_MATCHING: "✗", INCONCLUSIVE: "?"}.get(status, "")
    interval = ""
    if record.get("drop_low") is not None:
        interval = f" CI {-record['drop_high'] * 100 + 0.0:+.0f}..{-record['drop_low'] * 100 + 0.0:+.0f}%"
    flips = "" if record.get("lost") is None else f" -{record['lost']}/+{record['gained']}"
    return f"[{style}]{record['compressed']:.3f} ({-drop * 100 + 0.0:+.1f}%{interval}){flips} {mark}[/]"


def ratio_key(text) -> tuple:
    """Order of ratio columns: sparsities ascending, then N:M patterns, then quantization specs (more bits
    first), then anything else; a spelling that does not parse sorts last, as text."""
    from pytest_kick.compress import spec
    from pytest_kick.errors import KickError

    try:
        parsed = spec.parse(str(text))
    except KickError:
        return (9, 0.0, str(text))
    order = {"sparsity": 0, "nm": 1, "quant": 2, "checkpoint": 3}[parsed.kind]
    value = parsed.sparsity if parsed.kind != "quant" else -(parsed.bits + (parsed.act_bits or 0) / 100)
    return (order, value or 0.0, parsed.text)


def compression_line(model: str, c: dict) -> str:
    """What a compressed variant achieved, in one line: sparsity, bits, time, calibration."""
    text = f"{c['compressor']}@{c['ratio']} on {model}: achieved sparsity {c['sparsity']:.4f}"
    if c.get("bits") is not None:
        text += f", at most 2^{c['bits']} levels per group"
    if c.get("ragged_last_group"):
        text += f", ragged last group of {'/'.join(map(str, c['ragged_last_group']))} inputs"
    text += f" ({c['seconds']:.1f} s"
    if c.get("calibration"):
        text += f", calibration {c['calibration'][0]}x{c['calibration'][1]} tokens"
    return text + ")"


BASELINE_STATUS = {  # what the baseline store said, as the summary says it (strongest first)
    "regenerated": "recomputed by this run and rewritten (--kick-regen)",
    "written": "computed by this run and written",
    "computed": "computed by this run",
    "cached": "already done, read from the cache",
    "file": "already done, read from the baseline file",
}


def baseline_lines(records: list[dict], relpath=str) -> list[str]:
    """Which dense baselines this run computed and which it found already done, one line per (task, model).

    Every item of a (task, model) records the status its own baseline call saw; the dense item may well read a
    baseline that a compressed item of the same run (another xdist worker) computed, so the strongest status
    of all of them is this run's.
    """
    found: dict = {}
    for r in records:
        if r.get("baseline") in BASELINE_STATUS:
            found.setdefault((r["task"], r["model"]), []).append(r)
    if not found:
        return []
    order = list(BASELINE_STATUS)
    lines, done = [], 0
    for (task, model), rs in found.items():
        best = min(rs, key=lambda r: order.index(r["baseline"]))
        done += best["baseline"] in ("cached", "file")
        where = f" ({relpath(best['baseline_path'])})" if best.get("baseline_path") else ""
        lines.append(f"  {task} on {model}: {BASELINE_STATUS[best['baseline']]}{where}")
    head = f"dense baselines: {len(found) - done} computed by this run, {done} already done"
    return [head, *lines]


def saved_lines(records: list[dict]) -> list[str]:
    """What dense-first saved: compressed cases skipped because their dense baseline was inconclusive."""
    saved = [r for r in records if r.get("saved")]
    if not saved:
        return []
    compressed = {(r["model"], r["compressor"], r["ratio"]) for r in records if r.get("compression")}
    never = {(r["model"], r["compressor"], r["ratio"]) for r in saved} - compressed
    where = ", ".join(sorted({f"{r['task']} on {r['model']}" for r in saved}))
    cases = "case was" if len(saved) == 1 else "cases were"
    return [f"dense first: {len(saved)} compressed {cases} neither compressed nor evaluated, as dense is inconclusive "
            f"({where}); {len(never)} compressed variant{'' if len(never) == 1 else 's'} never built"]


def _figure(key: str, value) -> str:
    """3 decimals for a score, none for a count (``STEM n 6``, not ``6.000``)."""
    if isinstance(value, float) and key.endswith(" n") and value.is_integer():
        return str(int(value))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def details_lines(records: list[dict]) -> list[str]:
    """The tasks' extra figures (per-category accuracy, F1, ROUGE) per case, one line each."""
    lines = []
    for r in records:
        details = r.get("details") if r.get("compressor") != "dense" else r.get("details_dense")
        if details:
            label = "dense" if r.get("compressor") == "dense" else f"{r['compressor']}@{r['ratio']}"
            figures = ", ".join(f"{k} {_figure(k, v)}" for k, v in details.items())
            lines.append(f"{r['task']} {r['model']} {label}: {figures}")
    return lines


def table(records: list[dict]):
    """rich Table: rows task x compressor, a dense column, one column per ratio."""
    from rich.table import Table

    ratios = sorted({r["ratio"] for r in records if r.get("ratio") is not None}, key=ratio_key)
    out = Table(title="pytest-kick: score (change vs dense, 95% CI) -lost/+gained  ✓ matching ✗ not ? inconclusive")
    for name in ("task", "model", "compressor", "dense"):
        out.add_column(name, no_wrap=True)
    for ratio in ratios:
        out.add_column(str(ratio), justify="right", no_wrap=True)
    dense_by = {(r["task"], r["model"]): r for r in records if r.get("compressor") == "dense"}
    rows: dict = {}
    for r in records:
        if r.get("compressor") != "dense":
            rows.setdefault((r["task"], r["model"], r["compressor"]), {})[r["ratio"]] = r
    keys = sorted(rows) or sorted((t, m, "-") for t, m in dense_by)
    for task, model, compressor in keys:
        d = dense_by.get((task, model))
        if d is None:  # the dense item was not run (e.g. -k); take the dense score from any compressed item
            d = next((r for r in rows.get((task, model, compressor), {}).values()), {})
        dense_text = "" if d.get("dense") is None else f"{d['dense']:.3f} (n={d.get('n')})"
        if d.get("verdict") in STYLE and d.get("compressor") == "dense":
            dense_text = f"[{STYLE[d['verdict']]}]{dense_text}[/]"
        cells = [_cell(rows[(task, model, compressor)][ratio]) if ratio in rows.get((task, model, compressor), {})
                 else "" for ratio in ratios]
        out.add_row(task, model, compressor, dense_text, *cells)
    return out


def render(records: list[dict], width: int = 240, color: bool = False) -> str:
    """The table as text at its natural width (up to ``width``), never truncated to the terminal."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="standard" if color else None)
    console.print(table(records))
    return buffer.getvalue()


def _finite(value):
    """Strict JSON has no Infinity/NaN (jq and browsers reject them): an undefined drop is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(records: list[dict], path: Path, meta: dict) -> None:
    body = _finite({"meta": meta, "cases": records})
    atomic_write(path, json.dumps(body, indent=1, default=str, allow_nan=False))


def markdown(records: list[dict], meta: dict) -> str:
    """A Markdown summary for a CI job page: one table row per case, then the failures' evidence."""
    icon = {MATCHING: "✅ matching", NOT_MATCHING: "❌ not matching", INCONCLUSIVE: "⚠️ inconclusive",
            "sane": "✅ sane", "broken": "❌ broken"}
    lines = [f"## pytest-kick: {meta.get('title', 'compressed vs dense')}", ""]
    lines += ["| task | model | compressor | ratio | dense | compressed | drop | 95% CI of drop | lost / kept / gained | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def num(value, fmt):
        return "" if value is None else format(value, fmt)

    for r in sorted(records, key=lambda r: (r["task"], r["model"], r.get("compressor") != "dense",
                                            r.get("compressor") or "", ratio_key(r.get("ratio") or ""))):
        interval = ""
        if r.get("drop_low") is not None:
            interval = f"[{r['drop_low'] * 100:.1f}%, {r['drop_high'] * 100:.1f}%]"
        flips = "" if r.get("lost") is None else f"{r['lost']} / {r['kept']} / {r['gained']}"
        lines.append(
            f"| {r['task']} | {r['model']} | {r.get('compressor')} | {r.get('ratio') or ''} | "
            f"{num(r.get('dense'), '.3f')} (n={r.get('n')}) | {num(r.get('compressed'), '.3f')} | "
            f"{'' if r.get('drop') is None else format(r['drop'] * 100, '.1f') + '%'} | {interval} | {flips} | "
            f"{icon.get(r.get('verdict'), r.get('verdict') or r.get('outcome'))} |"
        )
    for key in ("protocol", "stat", "data"):
        if meta.get(key):
            lines.append(f"\n{key}: {meta[key]}")
    return "\n".join(lines) + "\n"
