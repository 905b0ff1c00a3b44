"""--kick-plot DIR: the paper's figure style, one PNG per (model, task): score against sparsity, one
line per compressor, the dense score as a horizontal line and the tolerance band below it."""

from __future__ import annotations

from pathlib import Path

from pytest_kick.baseline import safe_name
from pytest_kick.errors import KickError
from pytest_kick.formats import ratio_key
from pytest_kick.record import CaseRecord, Verdict


def plot(records: list[CaseRecord], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KickError("--kick-plot needs matplotlib: pip install 'pytest-kick[plot]'") from None

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    groups: dict = {}
    for r in records:
        groups.setdefault((r.model, r.task), []).append(r)
    for (model, task), rows in sorted(groups.items()):
        searches = [r for r in rows if r.search]
        rows = rows + searched_points(searches, rows)
        compressed = [
            r for r in rows if r.compressor != "dense" and r.compressed is not None and not r.recover
        ]  # recovered cases are not a compression level
        dense = next((r.dense for r in rows if r.dense is not None), None)
        if dense is None or not compressed:
            continue
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        ratios = sorted({r.ratio for r in compressed}, key=ratio_key)
        x_of = {ratio: k + 1 for k, ratio in enumerate(ratios)}  # dense at 0, then each asked ratio
        threshold = compressed[0].threshold
        if threshold is not None:
            ax.axhspan(
                min(threshold, dense),
                max(threshold, dense),
                color="tab:green",
                alpha=0.12,
                label=f"matching ({compressed[0].tolerance or 'tolerance'})",
            )
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label=f"dense {dense:.3f}")
        for name in sorted({r.compressor for r in compressed}):
            points = sorted((x_of[r.ratio], r.compressed, r.verdict) for r in compressed if r.compressor == name)
            ax.plot([0] + [p[0] for p in points], [dense] + [p[1] for p in points], marker="o", label=name)
            for x, y, verdict in points:
                if verdict == Verdict.NOT_MATCHING:
                    ax.plot(x, y, marker="x", color="tab:red", markersize=10, markeredgewidth=2)
        for r in searches:  # --kick-search: both readings marked on the compressor's line
            mark_readings(ax, r, x_of, {(p.compressor, p.ratio): p.compressed for p in compressed})
        ax.set_xticks(range(len(ratios) + 1), ["dense"] + [str(r) for r in ratios])
        ax.set_xlabel("sparsity / N:M / quantization")
        ax.set_ylabel(compressed[0].metric or "score")
        ax.set_title(
            f"{task} — {model} (n={compressed[0].n}, ✗ = not matching"
            + (", ★ largest matching, ▼ largest safe)" if searches else ")")
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{safe_name(model)}-{safe_name(task.replace(':', '-'))}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def searched_points(searches: list[CaseRecord], rows: list[CaseRecord]) -> list[CaseRecord]:
    """The levels a search evaluated, as points of its compressor's line (where no grid case has them)."""
    have = {(r.compressor, r.ratio) for r in rows}
    points = []
    for r in searches:
        for p in r.search["points"]:
            if (r.compressor, p["ratio"]) not in have:
                have.add((r.compressor, p["ratio"]))
                points.append(
                    CaseRecord(
                        r.task,
                        r.model,
                        r.compressor,
                        p["ratio"],
                        compressed=p["compressed"],
                        verdict=Verdict(p["verdict"]),
                        threshold=p.get("threshold"),
                        n=r.n,
                        tolerance=r.tolerance,
                        metric=r.metric,
                        dense=r.dense,
                    )
                )
    return points


def mark_readings(ax, record: CaseRecord, x_of: dict, score: dict) -> None:
    """A star at the largest matching level, a triangle at the largest level below which every level matches."""
    for key, marker, label in (("largest_matching", "*", "largest matching"), ("largest_safe", "v", "largest safe")):
        level = record.search[key]["level"]
        if level is None or level not in x_of or (record.compressor, level) not in score:
            continue
        ax.plot(
            x_of[level],
            score[(record.compressor, level)],
            marker=marker,
            markersize=14,
            linestyle="none",
            markerfacecolor="none",
            markeredgewidth=1.5,
            color="black",
            label=f"{record.compressor} {label} {level}",
        )
