"""Dense-drafted decoding against plain greedy decoding on one compressed case, interleaved, in one run.

Run by hand, never from the tests (minutes on SmolLM2; run it through a job slot on a shared machine):
    .venv/bin/python benchmarks/drafted_decoding.py [--model smollm2-135m] [--task summarization:small]
        [--compressor rtn] [--ratio w8] [--limit 8] [--repeats 2] [--threads 1] [--work DIR] [--models-dir DIR]

Every session is the plugin's whole path (pytest over the bundled suite, ``--kick-stat ci`` so a case evaluates
its items in one call). A first session computes the dense baseline, which records the dense answers (the drafts);
then the compressed case runs ``--repeats`` times per mode, ``--kick-accelerate on`` and ``off`` alternating
(A B B A ...), each session on the same cache (its dense baseline cached, the variant rebuilt). Printed per
session: the case's evaluation seconds (the runtime's timer: generation and scoring, compression excluded), the
acceptance rate and passes of drafting; then the median ratio off / on, and whether every verdict and score is
identical between the two modes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("kick_verdict", "kick_dense", "kick_compressed", "kick_n")


def session(args, cache: Path, mode: str, tag: str, dense_only: bool = False) -> dict:
    """One pytest session; returns the probe's figures and the compressed case's compared properties."""
    junit, probe = cache / f"junit-{tag}.xml", cache / f"probe-{tag}.json"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_grid_probe"]
    command += ["--kick-model", args.model, "--kick-tasks", args.task, "--kick-limit", str(args.limit)]
    command += ["--kick-compressor", args.compressor, "--kick-ratio", args.ratio, "--kick-stat", "ci"]
    command += ["--kick-accelerate", mode, "--kick-cache-dir", str(cache), "--junitxml", str(junit)]
    command += ["-k", "dense"] if dense_only else []
    env = {**os.environ, "KICK_GRID_PROBE": str(probe), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "benchmarks"), str(REPO), env.get("PYTHONPATH", "")])
    with open(cache / f"session-{tag}.log", "w") as log:
        subprocess.run(command, cwd=cache, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    found = json.loads(probe.read_text()) if probe.exists() else {"drafting": {}, "evaluated": {}}
    cases = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            if "dense" not in case.get("name"):
                cases[case.get("name")] = {k: props.get(k) for k in COMPARED}
    return {**found, "cases": cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="summarization:small")
    parser.add_argument("--compressor", default="rtn")
    parser.add_argument("--ratio", default="w8")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=str(REPO / ".kick-drafted"))
    parser.add_argument("--models-dir", default=None, help="an already converted models folder to link")
    args = parser.parse_args()
    cache = Path(args.work)
    cache.mkdir(parents=True, exist_ok=True)
    if args.models_dir and not (cache / "models").exists():
        (cache / "models").symlink_to(Path(args.models_dir).resolve())
    print(
        f"{args.task} on {args.model}, {args.compressor} {args.ratio}, --kick-limit {args.limit}, "
        f"{args.threads} thread(s)"
    )
    session(args, cache, "on", "dense", dense_only=True)
    runs: dict[str, list] = {"on": [], "off": []}
    for k in range(args.repeats):
        for mode in ("on", "off") if k % 2 == 0 else ("off", "on"):
            run = session(args, cache, mode, f"{mode}{k}")
            evaluated = next(iter(run["evaluated"].values()), None)
            drafting = next(iter(run["drafting"].values()), None) or {}
            runs[mode].append({**run, "seconds": evaluated["seconds"] if evaluated else float("nan")})
            print(
                f"  {mode:3} run {k}: {runs[mode][-1]['seconds']:7.1f} s evaluation"
                + (
                    f", acceptance {drafting['acceptance']}, {drafting['passes']} passes for "
                    f"{drafting['emitted']} tokens, near-ties {drafting['near_ties']}"
                    if drafting
                    else ""
                )
            )
    on = statistics.median(r["seconds"] for r in runs["on"])
    off = statistics.median(r["seconds"] for r in runs["off"])
    same = all(r["cases"] == runs["off"][0]["cases"] and r["cases"] for r in runs["on"] + runs["off"])
    print(f"median evaluation: plain {off:.1f} s, drafted {on:.1f} s: drafted is {off / on:.2f}x faster")
    print(f"every verdict and score identical between on and off: {same}")
    for name, props in runs["on"][0]["cases"].items():
        print(f"  {name}: {props}")


if __name__ == "__main__":
    main()
