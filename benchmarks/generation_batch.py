"""Greedy generation throughput of the local engine at several batch sizes (the default --kick-batch-size
is chosen from this).

Run by hand, never from the tests:
    .venv/bin/python benchmarks/generation_batch.py [--model smollm2-135m] [--prompts 16] [--new-tokens 32]
        [--batch-sizes 1,4,16] [--threads T] [--dtype float32|bfloat16] [--task icrqa:closed] [--task-stops]

Builds ``--prompts`` generation requests of ``--task`` (its own prompts; stop strings dropped so every request
decodes ``--new-tokens`` tokens unless EOS comes first), answers them at each batch size, and prints new
tokens per second of wall time and of process CPU time (the second is steadier on a shared machine), and
whether every batch size gave the same outputs.

``--task-stops`` keeps the task's own stop rules (stop strings, TriviaQA's first line), so rows end at
different steps; each batch size above 1 then also runs with the refill off (a batch decoding until its
longest row ends, as a plain batched ``generate`` does), side by side with the engine's refilling batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="icrqa:closed")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--task-stops", action="store_true", help="keep the task's stop rules; compare refill on/off")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: <repo>/.kick-test)")
    args = parser.parse_args()

    import torch

    from pytest_kick import tasks
    from pytest_kick.engines.local import LocalEngine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.base import Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir) if args.cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    cache.mkdir(exist_ok=True)
    loaded = load(registry.resolve(args.model), cache, "cpu", args.dtype)
    task = tasks.get(args.task)
    settings = Settings(limit=args.prompts)
    shots, items = task.split(task.load(settings), settings)
    requests = task.requests(items, shots, settings)
    if not args.task_stops:
        requests = [
            dataclasses.replace(r, stop=(), first_line=False, max_new_tokens=args.new_tokens, length_factor=0)
            for r in requests
        ]

    budget = "the task's own budgets and stops" if args.task_stops else f"up to {args.new_tokens} new tokens each"
    print(
        f"model {args.model} ({args.dtype}), {len(requests)} {args.task} prompts, {budget}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'batch':>10}{'new tokens':>12}{'wall s':>9}{'tok/s wall':>12}{'cpu s':>9}{'tok/s cpu':>11}")
    outputs = {}
    runs = [(int(b), True) for b in args.batch_sizes.split(",")]
    if args.task_stops:
        runs = [run for size, _ in runs for run in ([(size, False), (size, True)] if size > 1 else [(size, True)])]
    for size, refill in runs:
        engine = LocalEngine(loaded.model, loaded.tokenizer, "cpu", size, refill=refill)
        wall, cpu = time.perf_counter(), time.process_time()
        found = engine.generate_ids(requests)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        outputs[size, refill] = found
        new = sum(len(t) for t in found)
        label = f"{size}" + ("" if size == 1 or not args.task_stops else " refill" if refill else " plain")
        print(f"{label:>10}{new:>12}{wall:>9.1f}{new / wall:>12.1f}{cpu:>9.1f}{new / cpu:>11.1f}")
    first = next(iter(outputs.values()))
    print(f"same outputs in every run: {all(o == first for o in outputs.values())}")


if __name__ == "__main__":
    main()
