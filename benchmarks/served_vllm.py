"""vLLM in the loop, for real (``make vllm-check``): serve the dense model and --kick-export variants with vLLM on
this CPU, gate the served pair, and compare served with local item by item.

    .venv/bin/python benchmarks/served_vllm.py [--model smollm2-135m] [--limit 20] [--venv .kick/vllm-venv]
        [--formats dense,magnitude:2:4,rtn:w8,rtn:w4g64] [--dtype float32] [--rounds 2]
        [--out .kick/vllm-check]

1. installs vLLM's CPU build into a side environment, once (benchmarks/_vllm_server.py);
2. compresses ``--model`` in this process (the local engine, float32), evaluates MMLU (``--limit`` questions,
   5-shot, strict) on dense and on each variant, and writes each variant with --kick-export: pruned ones as plain
   checkpoints, rtn ones as compressed-tensors pack-quantized where the grid packs exactly (w8; w4 at a group size
   dividing every layer's inputs: g64 on SmolLM2 and Qwen2.5), else dequantized (SmolLM2's 576 inputs at g128);
3. serves each format with vLLM (``--dtype``) and, where it loads, runs the same questions through
   ``--kick-engine openai-completions``' engine: the per-item agreement of predicted letters with the local engine.
   On the dense model, the wall time of the same task, same items, on both engines, interleaved (local, served,
   local, served: ``--rounds``), the idle server paused (SIGSTOP) while the local engine runs; the first local
   evaluation of a format, which loads the model or compresses and exports it, is timed apart. A variant's local
   letters are those of its first evaluation and it is served once (``--variant-rounds`` times it as dense is);
4. on the dense server, MMLU the old way (one request per choice, echo + prompt_logprobs) and the new way
   (one request per question, verified first), interleaved ``--rounds`` times: requests and seconds per question,
   and the letters of each pass against the local engine's and against the first "before" pass;
5. gates each served variant against the served dense model with pytest (``--kick-engine
   openai-completions --kick-base-url ... --kick-compressed-url ...``) and prints its verdict line.

Why ``--dtype float32`` by default: the local engine computes in float32, and a small model's MMLU letters are
often near-ties (SmolLM2-135M sits at chance on MMLU); served in bfloat16,
vLLM's rounding, which also varies with the batch a request lands in, flips some of them (17 to 19 of 20 agreed,
run to run), so neither "served equals local" nor "one request per question equals one per choice" could be
checked item by item. In float32 both engines compute the same numbers up to summation order, and any remaining
difference is a real one. ``--dtype bfloat16`` measures what a bfloat16 deployment gives instead.
Every server is stopped before the script ends. Timings are of one run on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=20, help="MMLU questions")
    parser.add_argument("--formats", default="dense,magnitude:2:4,rtn:w8,rtn:w4g64")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="vLLM's")
    parser.add_argument("--venv", default=str(ROOT / ".kick" / "vllm-venv"))
    parser.add_argument("--cache-dir", default=str(ROOT / ".kick"))
    parser.add_argument("--out", default=str(ROOT / ".kick" / "vllm-check"))
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds on the dense model (at least 1)")
    parser.add_argument("--variant-rounds", type=int, default=0, help="interleaved timed rounds on each variant")
    args = parser.parse_args()
    if args.rounds < 1 or args.variant_rounds < 0:
        parser.error("--rounds must be at least 1, --variant-rounds at least 0")

    from _vllm_runs import LocalRuns
    from _vllm_server import Server, install, stop_all
    from _vllm_tables import print_tables

    signal.signal(signal.SIGTERM, stop_all)  # no server outlives a stopped benchmark

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    python = install(Path(args.venv))
    print(f"vLLM side environment: {args.venv} ({time.perf_counter() - started:.0f} s)", flush=True)

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    local = LocalRuns(args.model, args.limit, formats, args.cache_dir, out / "exported", ROOT)
    rows, timings, gates = [], [], []
    dense_dir = local.directory("dense")
    with Server(python, dense_dir, args.model, out / "logs" / "dense.log", args.dtype) as dense:
        if not dense.loaded:
            sys.exit(f"vLLM could not serve the dense model {dense_dir}: {dense.reason} (log {dense.log})")
        print(f"dense served in {dense.seconds:.0f} s at {dense.base_url}", flush=True)
        if "dense" in formats:
            rows.append(compare(local, "dense", dense, dense_dir, args.rounds))
        timings = requests_before_after(local, dense, args.rounds)
        for form in [f for f in formats if f != "dense"]:
            with dense.paused():
                directory = local.directory(form)  # compressed and exported here, timed apart
            name = f"{args.model}-{form.replace(':', '-')}"
            with Server(python, directory, name, out / "logs" / f"{name}.log", args.dtype) as served:
                with dense.paused():  # idle, it would busy-poll a core under the variant's timings
                    rows.append(compare(local, form, served, directory, args.variant_rounds))
                if served.loaded:
                    gates.append((form, gate(args, dense.base_url, served.base_url, out)))
    print_tables(args, rows, timings, gates, local.built)


def compare(local, form: str, server, directory: Path, rounds: int) -> dict:
    """Served against local on the same questions, interleaved (local, served, ...): letters and seconds. With no
    rounds, the local letters of the format's first evaluation against one served pass."""
    from _vllm_runs import written_as

    row = {"format": form, "written": written_as(directory), "loads": server.loaded, "reason": server.reason}
    if not server.loaded:
        print(f"{form}: vLLM did not load {directory}: {server.reason}", flush=True)
        return row
    row.update(local=[], served=[])
    if not rounds:
        row["local"].append({"outputs": local.first[form], "seconds": None})
        server.reset_prefix_cache()
        row["served"].append(local.served(server.base_url))
        agree = sum(a == b for a, b in zip(local.first[form], row["served"][-1]["outputs"]))
        print(f"{form}: {agree}/{len(local.first[form])} letters as the local engine's", flush=True)
    for round_ in range(1, rounds + 1):
        with server.paused():
            letters, seconds = local.local(form)
        row["local"].append({"outputs": letters, "seconds": seconds})
        server.reset_prefix_cache()  # every served pass starts cold, as the local one does
        row["served"].append(local.served(server.base_url))
        agree = sum(a == b for a, b in zip(letters, row["served"][-1]["outputs"]))
        print(
            f"{form}, round {round_}: local {seconds:.2f} s/question, served {row['served'][-1]['seconds']:.2f} "
            f"s/question; {agree}/{len(letters)} letters equal",
            flush=True,
        )
    return row


def requests_before_after(local, server, rounds: int) -> list[dict]:
    """MMLU on the dense server one request per choice (before) and one per question (after), interleaved, each
    pass from an empty prefix cache."""
    found = []
    for round_ in range(1, rounds + 1):
        for how, flag in (("per choice (before)", False), ("per question (after)", None)):
            server.reset_prefix_cache()
            run = local.served(server.base_url, one_request=flag)
            found.append({"round": round_, "how": how, **run})
            print(f"round {round_}, {how}: {run['requests']} requests, {run['seconds']:.2f} s per question", flush=True)
    return found


def gate(args, dense_url: str, compressed_url: str, out: Path) -> str:
    """The served pair gated by pytest through the served engine: its verdict line."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--kick-model",
        args.model,
        "--kick-tasks",
        "mmlu",
        "--kick-limit",
        str(args.limit),
        "--kick-engine",
        "openai-completions",
        "--kick-base-url",
        dense_url,
        "--kick-compressed-url",
        compressed_url,
        "--kick-cache-dir",
        str(out / "served-cache"),
        "-p",
        "no:cacheprovider",
        "-rs",
        "-q",
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if "mmlu" in line and ("served" in line or "dense" in line)]
    return f"pytest exit {run.returncode}: " + (" | ".join(lines[-3:]) or run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
