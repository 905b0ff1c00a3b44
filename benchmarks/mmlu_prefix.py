"""MMLU through the local engine: the same questions scored with and without the engine's prefix reuse.

Run by hand, never from the tests:
    .venv/bin/python benchmarks/mmlu_prefix.py [--model smollm2-135m] [--limit 60] [--batch-size 8]
        [--subjects N] [--shots K] [--protocol strict|kick] [--threads T] [--dtype float32|bfloat16]

Picks ``--limit`` test questions stratified by subject (as ``--kick-limit`` does; ``--subjects N`` keeps only
the first N subjects, to see many questions share one prefix), times ``MMLU.evaluate`` on a LocalEngine with
prefix reuse and on one without, and prints both accuracies (which must be equal), both times, the speed-up,
how many tokens each fed, and the largest gap between their letter log-likelihoods. Without reuse the engine
still answers the four letters of a question with one pass (their tokens differ in the last one only). With
``--limit 60`` over all 57 subjects most subjects have one question, so there is little to reuse; the gain
grows with the questions per subject (the full test set has 100-1534 per subject).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--subjects", type=int, default=None, help="keep the first N subjects only")
    parser.add_argument("--shots", type=int, default=0, help="as --kick-shots (0: MMLU's 5)")
    parser.add_argument("--protocol", default="strict", choices=["strict", "kick"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: <repo>/.kick-test)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    import torch

    from pytest_kick.engines.base import Runner
    from pytest_kick.engines.local import LocalEngine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.mmlu import MMLU, stratified_subset

    if args.threads:
        torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir) if args.cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    cache.mkdir(exist_ok=True)
    loaded = load(registry.resolve(args.model), cache, "cpu", args.dtype)

    settings = Settings(protocol=args.protocol, shots=args.shots, seed=args.seed)
    task = MMLU()
    dataset = task.load(settings)
    shots = task.split(dataset, settings)[0]  # no --kick-limit here: the first k dev questions of every subject
    pool = list(dataset.examples)
    if args.subjects:
        keep = list(dict.fromkeys(i.subject for i in pool))[: args.subjects]
        pool = [i for i in pool if i.subject in keep]
    items = stratified_subset(pool, args.limit, args.seed, task.name)

    class Recording(Runner):
        def __call__(self, requests):
            self.answers = super().__call__(requests)
            return self.answers

    runs = {}
    for reuse in (True, False):
        engine = LocalEngine(loaded.model, loaded.tokenizer, "cpu", args.batch_size, reuse_prefix=reuse)
        run = Recording(engine)
        started = time.perf_counter()
        scores, outputs = task.evaluate(items, shots, settings, run)
        runs[reuse] = (time.perf_counter() - started, scores, outputs, dict(engine.last_plan), run.answers)
    used = task.fit(items, shots, settings, Runner(engine)).shots_used  # the shots each question kept

    (on_s, on_scores, on_out, on_plan, on_ans), (off_s, off_scores, off_out, off_plan, off_ans) = (
        runs[True],
        runs[False],
    )
    subjects = len({i.subject for i in items})
    print(
        f"model: {args.model} ({args.dtype}), {len(items)} questions in {subjects} subjects, shots "
        f"{MMLU.shots_for(settings)} (mean used {sum(used.values()) / len(items):.2f}), protocol "
        f"{args.protocol}, batch {args.batch_size}, torch threads {torch.get_num_threads()}, data {dataset.source}"
    )
    print(f"{'what':<28}{'accuracy':>10}{'seconds':>10}{'s/question':>12}{'tokens fed':>12}")
    for label, seconds, scores, plan in (
        ("with prefix reuse", on_s, on_scores, on_plan),
        ("without (full prompts)", off_s, off_scores, off_plan),
    ):
        print(
            f"{label:<28}{sum(scores) / len(items):>10.4f}{seconds:>10.1f}{seconds / len(items):>12.2f}"
            f"{plan.get('tokens_fed', 0):>12}"
        )
    print(
        f"speed-up: {off_s / on_s:.2f}x; shared prefixes: {on_plan.get('groups', 0)}; passes "
        f"{on_plan.get('passes', 0)} for {on_plan.get('jobs', 0)} requests"
    )
    if args.protocol == "strict":
        gap = max(abs(a[0] - b[0]) for a, b in zip(on_ans, off_ans))
        print(f"max |log-likelihood difference| {gap:.2e}")
    print(f"same predictions: {on_out == off_out}; same scores: {on_scores == off_scores}")
    if on_out != off_out or on_scores != off_scores:
        raise SystemExit("prefix reuse changed the predictions")


if __name__ == "__main__":
    main()
