"""The default grid as a team runs it, with and without the accelerations, interleaved in one run.

Run by hand, never from the tests (it takes hours at --limit 50; run it through a job slot on a shared machine):
    .venv/bin/python benchmarks/default_grid.py [--model smollm2-135m] [--limit 50] [--tasks all]
        [--compressor magnitude] [--ratio R] [--models-dir DIR] [--work DIR] [--threads T]

Each task of the grid runs as its own pytest session over the bundled suite (the plugin's whole path: dense
baseline, compression, evaluation, gate), twice: with ``--kick-accelerate on`` (dense-drafted decoding, strict
perplexity streamed) and ``off`` (plain decoding, each perplexity item computed on its own), the order
alternating from task to task, each session from an empty cache. Both use the default ``--kick-stat``
(sequential), so items are those each case needed. The model
conversion is timed apart, once, into ``--work``/models (``--models-dir``: link an already converted models
folder instead, and say so); every session links it.

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


def session(args, task: str, mode: str, work: Path, models: Path) -> dict:
    """One timed pytest session of ``task`` in ``mode``: wall seconds, peak RSS, per-case properties, probe."""
    cache = work / f"cache-{task.replace(':', '_')}-{mode}"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "models").symlink_to(models.resolve())
    junit, probe = cache / "junit.xml", cache / "probe.json"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_grid_probe"]
    command += ["--kick-model", args.model, "--kick-tasks", task, "--kick-limit", str(args.limit)]
    command += ["--kick-compressor", args.compressor, "--kick-accelerate", mode, "--kick-cache-dir", str(cache)]
    command += ["--kick-ratio", args.ratio] if args.ratio else []
    command += ["--junitxml", str(junit)]
    env = {**os.environ, "KICK_GRID_PROBE": str(probe), "HF_HUB_OFFLINE": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "benchmarks"), str(REPO), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    with open(cache / "session.log", "w") as log:
        child = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    cases = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            cases[case.get("name")] = {"time": float(case.get("time", 0)), **{k: props.get(k) for k in COMPARED}}
    found = json.loads(probe.read_text()) if probe.exists() else {"drafting": {}, "evaluated": {}, "emitted": 0}
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "status": status, "cases": cases, **found}


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
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from pytest_kick import tasks

    names = tasks.names() if args.tasks == "all" else args.tasks.split(",")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models, conversion = convert(args, work)
    print(f"model conversion: {conversion:.0f} s" if conversion else f"model conversion: linked from {models}")
    print(f"default grid on {args.model}, --kick-limit {args.limit}, {len(names)} task variants", flush=True)
    runs: dict = {}
    for k, task in enumerate(names):
        for mode in ("on", "off") if k % 2 == 0 else ("off", "on"):
            runs[task, mode] = session(args, task, mode, work, models)
            print(f"  {task} {mode}: {runs[task, mode]['seconds']:.0f} s", flush=True)
    report(names, runs)


def report(names, runs) -> None:
    total = {m: sum(runs[t, m]["seconds"] for t in names) for m in ("on", "off")}
    print(f"\n{'task':22} {'mode':4} {'wall s':>8} {'items/s':>8} {'tok/s':>8} {'share':>6} {'peak MB':>8}  drafts")
    same = True
    for task in names:
        for mode in ("on", "off"):
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
        on, off = runs[task, "on"]["cases"], runs[task, "off"]["cases"]
        if not same_cases(on, off):
            same = False
            print(f"  {task}: verdicts or scores DIFFER between on and off")
    print(f"\ntotal: on {total['on'] / 60:.1f} min, off {total['off'] / 60:.1f} min (sessions only, conversion apart)")
    print(f"peak RSS: {max(r['rss_mb'] for r in runs.values()):.0f} MB")
    print(f"every verdict and score identical between on and off (scores within {SCORE_NOISE:g}): {same}")


if __name__ == "__main__":
    main()
