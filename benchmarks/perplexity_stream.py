"""Strict perplexity per case: the previous definition (each item in a window of its own) against the streamed
blocks of today's (tasks/perplexity_stream.py), A B A B in one process, on one model.

Run by hand, never from the tests (minutes on SmolLM2; run it through a job slot on a shared machine):
    .venv/bin/python benchmarks/perplexity_stream.py [--model smollm2-135m] [--limit 50] [--repeats 2]
        [--threads 1] [--scratch] [--cache-dir DIR] [--tokens-only]

- ``old``: task version 3, as it was: ``--kick-limit`` items drawn at random from the ~2,000-character chunks,
  each one rolling request of its text after the 8,192 characters before it, in windows of 1,024 tokens (the
  first window scores the item's tokens after as much context as fits).
- ``new``: today's task as a case runs it (``--kick-accelerate on``): ``--kick-limit`` consecutive chunks,
  scored in blocks of a 2,048-token window with a 512-token minimum context, each block in one pass.
- ``--scratch`` adds today's definition computed from scratch (``--kick-accelerate off``): each (item, block)
  piece alone.

``--tokens-only`` runs no model: it prints the tokens each definition runs through the model per case (at
``--limit``, 25, 50 and every item), from the tokenizer alone.

Printed per run: seconds (wall; the machine may be shared), tokens run through the model, tokens scored, and the
figure; then the median seconds of each and the ratio old / new.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

OLD_WINDOW, OLD_CONTEXT_CHARS = 1024, 8 * 1024  # version 3's constants


class Counting:
    """Wraps a Runner: counts the tokens of the windows asked for (rolling requests carrying token ids)."""

    def __init__(self, run):
        self.run, self.tokens = run, 0
        self.tokenize, self.max_length = run.tokenize, run.max_length

    def __call__(self, requests):
        self.tokens += sum(len(r.ids) for r in requests)
        return self.run(requests)


def old_case(task, dataset, limit, seed, engine):
    """Version 3's strict evaluation: (seconds, tokens run, tokens scored, figure)."""
    from pytest_kick.requests import RollingRequest
    from pytest_kick.tasks.data import subset

    items = subset(list(dataset.examples), limit, seed, task.name)
    joined = "".join(c.text for c in dataset.examples)
    requests = [
        RollingRequest(i.text, joined[max(0, i.start - OLD_CONTEXT_CHARS) : i.start], OLD_WINDOW) for i in items
    ]
    started = time.perf_counter()
    answers = engine.loglikelihood_rolling(requests)
    seconds = time.perf_counter() - started
    scored = sum(len(a) for a in answers)
    run = engine.last_plan["tokens_fed"]  # the tokens fed to the model in the call's passes
    return seconds, run, scored, math.exp(-sum(map(sum, answers)) / scored)


def new_case(task, dataset, limit, seed, engine, accelerate=True):
    """Today's strict evaluation as a case runs it: (seconds, tokens run, tokens scored, figure)."""
    from pytest_kick.engines.base import Runner
    from pytest_kick.tasks.base import Settings

    settings = Settings(limit=limit, seed=seed, accelerate=accelerate)
    _, items = task.split(dataset, settings)
    run = Counting(Runner(engine))
    started = time.perf_counter()
    scores, outputs = task.evaluate(items, [], settings, run)
    seconds = time.perf_counter() - started
    scored = sum(int(o.rsplit(" over ", 1)[1].split()[0]) for o in outputs)
    return seconds, run.tokens, scored, task.figure(sum(scores) / len(scores))


def token_counts(task, dataset, tokenizer, max_length, limits, seed) -> None:
    """Tokens run through the model and tokens scored per case, old against new, without running a model."""
    from pytest_kick.engines.tokens import rolling_windows
    from pytest_kick.tasks import perplexity_stream as stream
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.data import subset

    def encode(text, special=True):
        return list(tokenizer(text, add_special_tokens=special)["input_ids"])

    joined = "".join(c.text for c in dataset.examples)
    tokens, spans = stream.corpus_tokens([c.text for c in dataset.examples], encode)
    where = {c.id: s for c, s in zip(dataset.examples, spans)}
    for limit in limits:
        run = scored = 0
        for i in subset(list(dataset.examples), limit, seed, task.name):
            context = encode(joined[max(0, i.start - OLD_CONTEXT_CHARS) : i.start], False)
            for prompt, n in rolling_windows(context, encode(i.text, False), OLD_WINDOW):
                run, scored = run + len(prompt) - 1, scored + n  # a job feeds the window but its last token
        asked = []

        def answer(requests):
            asked.extend(requests)
            return [(0.0,) * (len(r.ids) - 1) for r in requests]

        _, items = task.split(dataset, Settings(limit=limit, seed=seed))
        shape = stream.geometry(max_length)
        got = stream.streamed(tokens, [where[i.id] for i in items], shape, answer)
        new_run, new_scored = sum(len(r.ids) - 1 for r in asked), sum(map(len, got))
        print(
            f"  --kick-limit {limit}: old runs {run} tokens for {scored} scored ({run / scored:.2f} a token), new "
            f"{new_run} for {new_scored} ({new_run / new_scored:.2f}) in {len(asked)} windows: "
            f"{run / new_run:.2f}x fewer"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scratch", action="store_true", help="also time today's definition from scratch")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: <repo>/.kick-test)")
    parser.add_argument("--tokens-only", action="store_true", help="count tokens run per case; run no model")
    args = parser.parse_args()

    import torch

    from pytest_kick import tasks
    from pytest_kick.engines.local import LocalEngine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.base import Settings

    torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir) if args.cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    loaded = load(registry.resolve(args.model), cache, "cpu", "float32")
    engine = LocalEngine(loaded.model, loaded.tokenizer, "cpu")
    task = tasks.get("perplexity")
    dataset = task.load(Settings())
    print(f"strict perplexity on {args.model}, --kick-limit {args.limit}, {args.threads} thread(s), {dataset.source}")
    if args.tokens_only:
        limits = sorted({args.limit, 25, 50}) + [None]
        return token_counts(task, dataset, loaded.tokenizer, engine.max_length, limits, args.seed)
    cases = {"old": lambda: old_case(task, dataset, args.limit, args.seed, engine)}
    cases["new"] = lambda: new_case(task, dataset, args.limit, args.seed, engine)
    if args.scratch:
        cases["scratch"] = lambda: new_case(task, dataset, args.limit, args.seed, engine, accelerate=False)
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for k in range(args.repeats):
        for name in cases if k % 2 == 0 else reversed(list(cases)):
            took, run, scored, figure = cases[name]()
            seconds[name].append(took)
            print(
                f"  {name:7} run {k}: {took:7.1f} s, {run:6d} tokens run, {scored:6d} scored "
                f"({run / scored:.2f} run per scored), perplexity {figure:.3f}",
                flush=True,
            )
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    print("median seconds per case: " + ", ".join(f"{n} {m:.1f}" for n, m in medians.items()))
    print(f"new (streamed) is {medians['old'] / medians['new']:.2f}x faster per case than old")
    if args.scratch:
        print(f"streamed is {medians['scratch'] / medians['new']:.2f}x faster than the same definition from scratch")


if __name__ == "__main__":
    main()
