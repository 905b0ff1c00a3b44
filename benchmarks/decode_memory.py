"""What sets the peak resident memory of a long-prompt generation case: the model, the prompt passes, or the
decode batch's key/value cache. Each setting runs in a fresh process (peak RSS is a process's high-water mark).

Run by hand, never from the tests (minutes on SmolLM2; run it through a job slot on a shared machine):
    .venv/bin/python benchmarks/decode_memory.py [--model smollm2-135m] [--task summarization:large] [--limit 16]
        [--budgets none:none,default:none,default:default] [--new-tokens N] [--threads 1] [--cache-dir DIR]

Per setting ``KV:PASS`` of the decode batch's key/value budget (``none``: unbounded, as before the budget existed;
``default``: engines/kv_budget.py CACHE_BYTES; or a number of MiB) and of its prompt passes' padded tokens
(``none``: one pass for every prompt admitted together, as before the bound existed; ``default``: kv_budget.py
PASS_TOKENS; or a number of tokens; a setting without ``:PASS`` keeps the default), and optionally ``:ROOM``,
how decode steps grow the cache (``default``: written in place, engines/kv_room.py; ``none``: transformers'
concatenation, a new tensor every step, as before kv_room existed): resident memory after loading
the model (and its weight bytes), the peak during prompt passes and during decode steps (a thread samples VmRSS
every 2 ms), the process's high-water mark (VmHWM), the largest key/value cache the batch held (rows x positions,
and its bytes), the rows of the widest prompt pass, the seconds, and whether the generated tokens equal the first
setting's. ``--new-tokens N`` caps every request's budget at N (the task's own budget by default): shorter runs, the
same prompt passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def status(key: str) -> int:
    """A /proc/self/status figure in MiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return 0


def child(args) -> None:
    """One setting, in this process: prints one JSON line of figures."""
    import torch

    from pytest_kick import tasks
    from pytest_kick.engines import decode, kv_budget, kv_room
    from pytest_kick.engines.local import LocalEngine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.base import Settings

    torch.set_num_threads(args.threads)
    cache, per_pass, room = (args.budget.split(":") + ["", ""])[:3]
    if room == "none":
        kv_room.make_roomy = lambda cache: cache
    if cache == "none":
        kv_budget.CACHE_BYTES = None
    elif cache != "default":
        kv_budget.CACHE_BYTES = int(float(cache) * 2**20)
    if per_pass == "none":
        kv_budget.PASS_TOKENS = None
    elif per_pass not in ("", "default"):
        kv_budget.PASS_TOKENS = int(per_pass)
    loaded = load(registry.resolve(args.model), Path(args.cache_dir), "cpu", "float32")
    engine = LocalEngine(loaded.model, loaded.tokenizer, "cpu")
    task = tasks.get(args.task)
    settings = Settings(limit=args.limit)
    shots, items = task.split(task.load(settings), settings)
    requests = task.requests(items, shots, settings)
    if args.new_tokens:
        requests = [dataclasses.replace(r, max_new_tokens=min(r.max_new_tokens, args.new_tokens)) for r in requests]
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) >> 20
    phase, peaks, held = ["idle"], {"prefill": 0, "decode": 0}, {"positions": 0, "bytes": 0, "prefill_rows": 0}

    def sample() -> None:
        while phase[0] != "done":
            if phase[0] in peaks:
                peaks[phase[0]] = max(peaks[phase[0]], status("VmRSS"))
            time.sleep(0.002)

    prefill, step = decode.Decoder._prefill, decode.Decoder._emit

    def traced_prefill(self, prompts, *rest, **kw):
        phase[0] = "prefill"
        held["prefill_rows"] = max(held["prefill_rows"], len(prompts))
        try:
            return prefill(self, prompts, *rest, **kw)
        finally:
            phase[0] = "decode"

    def traced_emit(self, rows, *rest, **kw):
        keys = sum(layer.keys.nbytes + layer.values.nbytes for layer in rows.cache.layers)
        if keys > held["bytes"]:
            held.update(bytes=keys, positions=len(rows.live) * rows.mask.shape[1])
        return step(self, rows, *rest, **kw)

    decode.Decoder._prefill, decode.Decoder._emit = traced_prefill, traced_emit
    loaded_rss = status("VmRSS")
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    outputs = engine.generate_ids(requests)
    seconds = time.perf_counter() - started
    phase[0] = "done"
    thread.join()
    prompt_tokens = [len(engine.prompt_ids(r)) for r in requests]
    print(
        json.dumps(
            {
                "weights_mib": weights,
                "loaded_mib": loaded_rss,
                "peak_prefill_mib": peaks["prefill"],
                "peak_decode_mib": peaks["decode"],
                "hwm_mib": status("VmHWM"),
                "kv_positions": held["positions"],
                "kv_mib": held["bytes"] >> 20,
                "prefill_rows": held["prefill_rows"],
                "longest_prompt": max(prompt_tokens),
                "seconds": seconds,
                "outputs": outputs,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="summarization:large")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--budgets", default="none:none,default:none,default:default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--cache-dir", default=str(REPO / ".kick-test"))
    parser.add_argument("--budget", default=None, help=argparse.SUPPRESS)  # set in the child process
    args = parser.parse_args()
    if args.budget is not None:
        return child(args)
    print(
        f"{args.task} on {args.model}, --kick-limit {args.limit}, {args.threads} thread(s), dense, batch 16, "
        f"new tokens {args.new_tokens or 'as the task asks'}"
    )
    first = None
    for budget in args.budgets.split(","):
        command = [sys.executable, __file__, "--budget", budget, "--model", args.model, "--task", args.task]
        command += ["--limit", str(args.limit), "--threads", str(args.threads), "--cache-dir", args.cache_dir]
        command += ["--new-tokens", str(args.new_tokens)] if args.new_tokens else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            print(f"  budget {budget}: failed\n{done.stderr[-2000:]}")
            continue
        found = json.loads(lines[-1])
        first = first if first is not None else found["outputs"]
        print(
            f"  budget {budget:>15}: weights {found['weights_mib']} MiB, loaded {found['loaded_mib']} MiB, "
            f"peak in prompt passes {found['peak_prefill_mib']} MiB, in decode steps {found['peak_decode_mib']} MiB, "
            f"high-water {found['hwm_mib']} MiB; largest KV cache {found['kv_positions']} positions = "
            f"{found['kv_mib']} MiB; widest prompt pass {found['prefill_rows']} rows (longest prompt "
            f"{found['longest_prompt']} tokens); {found['seconds']:.0f} s; same tokens as the first: "
            f"{found['outputs'] == first}",
            flush=True,
        )


if __name__ == "__main__":
    main()
