"""vs_lmeval.py, measuring and printing: the machine line, interleaved timed runs, the items/s and agreement
table and the ratio against lm-eval's best batch size."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def machine_line(threads: int) -> str:
    import torch
    import transformers

    try:
        from importlib.metadata import version

        lmeval = version("lm-eval")
    except Exception:
        lmeval = "not installed"
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " load avg %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (
        f"machine: {cpu}, {os.cpu_count()} CPUs,{load}; torch threads {threads}; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, lm-eval {lmeval}; python {platform.python_version()}"
    )


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def measure(title: str, runs: list, repeats: int) -> tuple[dict, dict]:
    """``runs``: (row label, zero-argument callable returning predictions), called in this order in every
    repeat (interleaved); a label may appear more than once, its times are pooled. Returns the seconds and
    the first outputs of each label."""
    seconds: dict[str, list[float]] = {}
    outputs: dict[str, list] = {}
    for repeat in range(repeats):
        for label, fn in runs:
            took, out = timed(fn)
            seconds.setdefault(label, []).append(took)
            outputs.setdefault(label, out)
            print(f"  [{title} {repeat + 1}/{repeats}] {label}: {took:.1f} s", flush=True)
    return seconds, outputs


def table(title: str, n: int, seconds: dict, outputs: dict, reference: str, same) -> dict:
    """Print items/s (median) and agreement with ``reference`` per row; return the rows."""
    rows = {}
    print(f"\n{title}: {n} items; items/s from the median time; agreement = same prediction as {reference}")
    print(f"  {'run':<24}{'items/s':>9}{'median s':>10}{'runs':>6}{'agree':>12}")
    for label, times in seconds.items():
        agree = sum(same(a, b) for a, b in zip(outputs[label], outputs[reference]))
        rows[label] = {
            "items_per_s": n / statistics.median(times),
            "seconds": times,
            "agree": agree,
            "n": n,
            "outputs": outputs[label],
        }
        print(
            f"  {label:<24}{rows[label]['items_per_s']:>9.2f}{statistics.median(times):>10.1f}{len(times):>6}"
            f"{agree:>8}/{n:<4}"
        )
    return rows


def summary(rows: dict, ours: str, target: float, what: str, same=lambda a, b: a == b) -> str:
    theirs = [n for n in rows if n.startswith("lm-eval")]
    if not theirs:
        return f"  {what}: lm-eval not installed, no ratio"
    best = max(theirs, key=lambda n: rows[n]["items_per_s"])
    ratio = rows[ours]["items_per_s"] / rows[best]["items_per_s"]
    agree = sum(same(a, b) for a, b in zip(rows[ours]["outputs"], rows[best]["outputs"]))
    n = rows[ours]["n"]
    return (
        f"  {what}: {ours} / best {best} = {ratio:.2f}x "
        f"(target >= {target}x: {'met' if ratio >= target else 'MISSED'}); "
        f"same predictions {agree}/{n} = {100 * agree / n:.1f}%"
    )
