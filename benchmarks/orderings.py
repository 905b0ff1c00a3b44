"""Does the suite reproduce the orderings LLM-KICK reports (Vicuna-7B) on a small model that knows something?

Run by hand, never from the tests (from the repository root):

    .venv/bin/python benchmarks/orderings.py --n 40            # runs what is missing, then writes the section
    .venv/bin/python benchmarks/orderings.py --n 40 --write    # only rewrites the section from what was run

Orderings checked (each with its measured numbers, n and 95 % intervals):

1. open book >= closed book at the same sparsity (icrqa:open vs icrqa:closed, magnitude): the relative drop
   of open book is no larger than closed book's;
2. 8-bit >= 4-bit >= 50 % pruning on factoid QA and MMLU (rtn w8, rtn w4g128, magnitude 0.5);
3. SparseGPT and Wanda >= magnitude at 50 % sparsity on factoid QA and MMLU;
4. knowledge tasks fail at lower sparsity than perplexity suggests (magnitude 0.1, 0.3, 0.5): the first
   sparsity at which factoid QA / MMLU are not matching is no higher than perplexity's.

Every run is the plugin itself: one pytest session per experiment with ``--kick-report`` (JSON), sharing
the plugin's cache (dense baselines are computed once) in --cache-dir. A finished experiment is not rerun
(its JSON is read back) unless its n differs; experiments run in priority order, --jobs at a time, and the
section is rewritten after each one, so a run cut short still reports what it measured.

Comparisons between two compressed variants on the same items are paired: the per-item scores of each are
the dense baseline's (from the cache) with the flipped items of its flip report applied, and the 95 %
interval of the difference is a paired bootstrap. The section goes to docs/fidelity.md between the lines
``<!-- orderings:start -->`` and ``<!-- orderings:end -->`` (nothing outside them is touched).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from _orderings_plan import EXPERIMENTS, n_of, shots_of  # noqa: E402
from _orderings_section import section  # noqa: E402

START, END = "<!-- orderings:start -->", "<!-- orderings:end -->"
MODEL = "qwen2.5-coder-0.5b"


def pytest_args(name, tasks, compressors, ratios, shots, args) -> list[str]:
    out = Path(args.out_dir)
    data = ["--kick-data-dir", str(args.mmlu_data_dir)] if tasks == "mmlu" and args.mmlu_data_dir else []
    return [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rN",
        "--kick-model",
        args.model,
        "--kick-tasks",
        tasks,
        "--kick-compressor",
        compressors,
        "--kick-ratio",
        ratios,
        "--kick-limit",
        str(n_of(tasks, args)),
        "--kick-shots",
        str(shots),
        "--kick-cache-dir",
        str(args.cache_dir),
        "--kick-calib-samples",
        str(args.calib_samples),
        "--kick-calib-seqlen",
        str(args.calib_seqlen),
        "--kick-report",
        str(out / f"{name}.json"),
        "--kick-stat",
        "ci",  # every variant on every item: the orderings pair two variants item by item
        *data,
    ]


def done(experiment, args) -> bool:
    path = Path(args.out_dir) / f"{experiment[0]}.json"
    if not path.exists():
        return False
    meta = json.loads(path.read_text())["meta"]["config"]
    return meta["limit"] == n_of(experiment[1], args) and meta["shots"] == shots_of(experiment, args)


def run_all(args) -> None:
    """Every missing experiment, --jobs at a time, in priority order; the section rewritten after each."""
    queue = [e for e in EXPERIMENTS if e[0] in args.only and not done(e, args)]
    lock = threading.Lock()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                experiment = queue.pop(0)
            name, tasks, compressors, ratios, _ = experiment
            started = time.time()
            print(f"[orderings] {name}: {tasks} x {compressors} @ {ratios}, n={n_of(tasks, args)} ...", flush=True)
            with open(Path(args.out_dir) / f"{name}.log", "w") as log:
                code = subprocess.call(
                    pytest_args(name, tasks, compressors, ratios, shots_of(experiment, args), args),
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            print(
                f"[orderings] {name}: pytest exit {code} after {time.time() - started:.0f} s "
                f"(log {args.out_dir}/{name}.log)",
                flush=True,
            )
            with lock:
                write(args)

    threads = [threading.Thread(target=worker) for _ in range(args.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def write(args) -> None:
    path = ROOT / "docs" / "fidelity.md"
    text = path.read_text() if path.exists() else f"# Fidelity to LLM-KICK\n\n## Orderings\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Orderings\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{section(args)}\n{END}{tail}")
    print(f"[orderings] wrote {path.relative_to(ROOT)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="items per task (--kick-limit)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--shots", type=int, default=2, help="factoid QA shots (the 0.5B model is near 0 at 0 shots)")
    parser.add_argument("--calib-samples", type=int, default=16)
    parser.add_argument("--calib-seqlen", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=2, help="pytest sessions at a time")
    parser.add_argument("--cache-dir", default=str(ROOT / ".kick"))
    parser.add_argument("--out-dir", default=str(ROOT / ".kick" / "orderings"))
    parser.add_argument("--only", default=",".join(e[0] for e in EXPERIMENTS), help="experiments to run")
    parser.add_argument("--ppl-n", type=int, default=None, help="perplexity's items (default: --n)")
    parser.add_argument(
        "--mmlu-data-dir",
        default=None,
        help="MMLU from this --kick-data-dir (e.g. a few subjects written by examples/mmlu_subjects.py)",
    )
    parser.add_argument("--write", action="store_true", help="only rewrite the section from what was run")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    if not args.write:
        started = time.time()
        run_all(args)
        print(f"[orderings] all experiments done in {time.time() - started:.0f} s", flush=True)
    write(args)


if __name__ == "__main__":
    main()
