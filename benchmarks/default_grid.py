"""The default grid as a team runs it, with and without the accelerations, interleaved in one run.

Run by hand, never from the tests (it takes hours at --limit 50; run it through a job slot on a shared machine):
    .venv/bin/python benchmarks/default_grid.py [--model smollm2-135m] [--limit 50] [--tasks all]
        [--compressor magnitude] [--ratio R] [--models-dir DIR] [--work DIR] [--threads T]
        [--modes auto,off] [--side-by-side] [--report-only]

Each task of the grid runs as its own pytest session over the bundled suite (the plugin's whole path: dense
baseline, compression, evaluation, gate), once per ``--kick-accelerate`` mode of ``--modes``: by default ``auto``
(the code as a team gets it: strict perplexity streamed, dense-drafted decoding on a CUDA device only) and ``off``
(plain decoding, each perplexity item computed on its own); ``on`` drafts on a CPU too. The order alternates from
task to task, each session from an empty cache; ``--side-by-side`` starts a task's sessions together instead (with
``--threads 1`` on two cores each has a core of its own, both under the same load). All use the default
``--kick-stat`` (sequential), so items are those each case needed. Every finished session is kept in
``--work``/grid.json at once, so an interrupted run keeps what it measured and a rerun skips it; ``--report-only``
prints the table from that file. The model conversion is timed apart, once, into ``--work``/models
(``--models-dir``: link an already converted models folder instead, and say so); every session links it.

Printed per task and mode: wall time (the session's, process start to exit), items per second (items of every
case), new tokens per second (tokens the local engine generated, counted in the session: _grid_probe.py; 0 for tasks
that only score), the
task's share of the mode's total, the drafts' acceptance rate per compressed case, the peak resident memory of
each session, and whether every verdict and score is identical between the two modes (verdicts and item counts
exactly; scores within SCORE_NOISE relative: streamed perplexity equals its from-scratch computation within float
noise, not bit for bit).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("kick_verdict", "kick_dense", "kick_compressed", "kick_n")
SCORE_NOISE = 1e-6  # relative difference of two scores that counts as the same


def same_cases(on: dict, off: dict) -> bool:
    """Whether two sessions' cases agree: the same cases, verdicts and item counts, scores within SCORE_NOISE."""
    if not on or set(on) != set(off):
        return False
    for name, a in on.items():
        b = off[name]
        if (a["kick_verdict"], a["kick_n"]) != (b["kick_verdict"], b["kick_n"]):
            return False
        for key in ("kick_dense", "kick_compressed"):
            if (a[key] is None) != (b[key] is None):
                return False
            if a[key] is not None and not math.isclose(float(a[key]), float(b[key]), rel_tol=SCORE_NOISE):
                return False
    return True


def start(args, task: str, mode: str, work: Path, models: Path) -> dict:
    """Start one pytest session of ``task`` in ``mode`` from an empty cache; ``finish`` waits for it."""
    cache = work / f"cache-{task.replace(':', '_')}-{mode}"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "models").symlink_to(models.resolve())
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_grid_probe"]
    command += ["--kick-model", args.model, "--kick-tasks", task, "--kick-limit", str(args.limit)]
    command += ["--kick-compressor", args.compressor, "--kick-accelerate", mode, "--kick-cache-dir", str(cache)]
    command += ["--kick-ratio", args.ratio] if args.ratio else []
    command += ["--junitxml", str(cache / "junit.xml")]
    env = {**os.environ, "KICK_GRID_PROBE": str(cache / "probe.json"), "HF_HUB_OFFLINE": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "benchmarks"), str(REPO), env.get("PYTHONPATH", "")])
    with open(cache / "session.log", "w") as log:
        child = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    return {"child": child, "cache": cache, "started": time.perf_counter()}


def finish(started: dict):
    """Wait for started sessions, yielding each as it exits (whichever ends first, first): its mode, and its wall
    seconds (process start to exit), peak RSS, per-case properties and probe."""
    by_pid = {run["child"].pid: mode for mode, run in started.items()}
    while by_pid:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in by_pid:
            continue
        mode = by_pid.pop(pid)
        run = started[mode]
        run["child"].returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        seconds = time.perf_counter() - run["started"]
        yield mode, {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "status": status, **_read(run["cache"])}


def _read(cache: Path) -> dict:
    """A finished session's per-case properties (JUnit) and what the probe wrote."""
    junit, probe = cache / "junit.xml", cache / "probe.json"
    cases = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            cases[case.get("name")] = {"time": float(case.get("time", 0)), **{k: props.get(k) for k in COMPARED}}
    found = json.loads(probe.read_text()) if probe.exists() else {"drafting": {}, "evaluated": {}, "emitted": 0}
    return {"cases": cases, **found}


def convert(args, work: Path) -> tuple[Path, float]:
    """The converted model in ``work``/models, and the seconds the conversion took (0: linked, not converted)."""
    if args.models_dir:
        return Path(args.models_dir), 0.0
    sys.path.insert(0, str(REPO))
    from pytest_kick.models.loading import load
    from pytest_kick.models.registry import resolve

    started = time.perf_counter()
    load(resolve(args.model), work / "convert", "cpu", "float32")
    models = work / "convert" / "models"
    models.mkdir(parents=True, exist_ok=True)  # a model built in memory (tiny-random-llama) converts nothing
    return models, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--tasks", default="all", help="comma list of task spellings (default: every task variant)")
    parser.add_argument("--compressor", default="magnitude")
    parser.add_argument("--ratio", default=None, help="as --kick-ratio (default: the compressor's default grid)")
    parser.add_argument("--models-dir", default=None, help="an already converted models folder to link")
    parser.add_argument("--work", default=str(REPO / ".kick-grid"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads per session (default: torch's)")
    parser.add_argument("--modes", default="auto,off", help="the two --kick-accelerate modes compared")
    parser.add_argument("--side-by-side", action="store_true", help="start a task's two sessions together")
    parser.add_argument("--report-only", action="store_true", help="print the table of --work/grid.json")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if len(modes) != 2 or not set(modes) <= {"auto", "on", "off"} or modes[0] == modes[1]:
        parser.error(f"--modes takes two different modes of auto, on, off; got {args.modes!r}")
    sys.path.insert(0, str(REPO))
    from pytest_kick import tasks

    names = tasks.names() if args.tasks == "all" else args.tasks.split(",")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    kept = work / "grid.json"
    settings = {k: getattr(args, k) for k in ("model", "limit", "compressor", "ratio", "threads", "side_by_side")}
    state = json.loads(kept.read_text()) if kept.exists() else {"settings": settings, "conversion": None, "runs": {}}
    if state["settings"] != settings:
        sys.exit(f"{kept} holds a run with other settings ({state['settings']}): pass another --work")
    if args.report_only:
        return report(names, modes, state)
    if state["conversion"] is None:
        models, state["conversion"] = convert(args, work)
        state["models"] = str(models)
        kept.write_text(json.dumps(state, indent=1))
    conversion = state["conversion"]
    print(f"model conversion: {conversion:.0f} s" if conversion else f"model conversion: linked from {state['models']}")
    print(f"default grid on {args.model}, --kick-limit {args.limit}, {len(names)} task variants", flush=True)
    for k, task in enumerate(names):
        order = [m for m in (modes if k % 2 == 0 else modes[::-1]) if f"{task}|{m}" not in state["runs"]]
        batches = [order] if args.side_by_side else [[m] for m in order]
        for batch in batches:
            started = {m: start(args, task, m, work, Path(state["models"])) for m in batch}
            for mode, run in finish(started):  # kept as each session ends, not when its batch does
                state["runs"][f"{task}|{mode}"] = run
                kept.write_text(json.dumps(state, indent=1))
                print(f"  {task} {mode}: {run['seconds']:.0f} s", flush=True)
    report(names, modes, state)


def report(names, modes, state) -> None:
    runs = {tuple(key.split("|")): run for key, run in state["runs"].items()}
    names = [t for t in names if all((t, m) in runs for m in modes)]
    if not names:
        print(f"no task has finished in both {modes[0]} and {modes[1]} yet")
        return
    total = {m: sum(runs[t, m]["seconds"] for t in names) for m in modes}
    print(f"\n{'task':22} {'mode':4} {'wall s':>8} {'items/s':>8} {'tok/s':>8} {'share':>6} {'peak MB':>8}  drafts")
    same = True
    for task in names:
        for mode in modes:
            run = runs[task, mode]
            items = sum(int(c["kick_n"] or 0) for c in run["cases"].values())
            accepted = ", ".join(
                f"{case.split(' ', 1)[1]} {d['acceptance']}" for case, d in run["drafting"].items() if d["acceptance"]
            )
            print(
                f"{task:22} {mode:4} {run['seconds']:8.1f} {items / run['seconds']:8.2f} "
                f"{run['emitted'] / run['seconds']:8.1f} {run['seconds'] / total[mode]:6.1%} {run['rss_mb']:8.0f}  "
                f"{accepted}"
            )
        if not same_cases(runs[task, modes[0]]["cases"], runs[task, modes[1]]["cases"]):
            same = False
            print(f"  {task}: verdicts or scores DIFFER between {modes[0]} and {modes[1]}")
    failed = sorted(f"{t} {m}" for (t, m), r in runs.items() if r["status"] not in (0, 256))
    minutes = ", ".join(f"{m} {total[m] / 60:.1f} min" for m in modes)
    print(f"\ntotal over {len(names)} task variants: {minutes} (sessions only, conversion apart)")
    print(f"peak RSS: {max(r['rss_mb'] for r in runs.values()):.0f} MB")
    print(f"every verdict and score identical between {modes[0]} and {modes[1]} (within {SCORE_NOISE:g}): {same}")
    if failed:
        print(f"sessions that ended neither passed nor with verdicts that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
