"""MMLU prefix KV reuse: the same questions scored with and without the cached subject prefix.

Run by hand, never from the tests:
    .venv/bin/python benchmarks/mmlu_prefix.py [--model smollm2-135m] [--limit 60] [--batch-size 8]
        [--subjects N] [--shots K] [--protocol strict|kick] [--threads T]

Picks ``--limit`` test questions stratified by subject (as ``--kick-limit`` does; ``--subjects N`` keeps only
the first N subjects, to see many questions share one prefix), times ``MMLU.evaluate`` once with prefix reuse
and once without, and prints both accuracies (which must be equal), both times and the speed-up. With
``--limit 60`` over all 57 subjects most subjects have one question, so there is little to reuse; the gain
grows with the questions per subject (the full test set has 100-1534 per subject). With strict scoring and a
tokenizer where " A" is one token, the kick protocol reads the same logits: its accuracy is printed as well.
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
    args = parser.parse_args()

    import torch

    from pytest_kick.engine import Engine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.mmlu import MMLU, letter_tokens, stratified_subset

    if args.threads:
        torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir) if args.cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    cache.mkdir(exist_ok=True)
    loaded = load(registry.resolve(args.model), cache, "cpu", "float32")
    engine = Engine(loaded.model, loaded.tokenizer, "cpu", args.batch_size)

    settings = Settings(protocol=args.protocol, shots=args.shots, seed=args.seed)
    task = MMLU()
    dataset = task.load(settings)
    task.split(dataset, settings)
    pool = list(dataset.examples)
    if args.subjects:
        keep = list(dict.fromkeys(i.subject for i in pool))[: args.subjects]
        pool = [i for i in pool if i.subject in keep]
    items = stratified_subset(pool, args.limit, args.seed, task.name)

    runs = {}
    for reuse in (True, False):
        task.reuse_prefix = reuse
        started = time.perf_counter()
        scores, outputs = task.evaluate(engine, items, [], settings)
        runs[reuse] = (time.perf_counter() - started, scores, outputs, dict(task.last_run), task.last_readouts)

    (on_s, on_scores, on_out, on_run, on_read), (off_s, off_scores, off_out, _, off_read) = runs[True], runs[False]
    gap = max(abs(x - y) for a, b in zip(on_read, off_read) for x, y in zip(a.choice_logits, b.choice_logits))
    subjects = len({i.subject for i in items})
    print(f"model: {args.model}, {len(items)} questions in {subjects} subjects, shots {MMLU.shots_for(settings)} "
          f"(mean used {sum(r.shots for r in on_read) / len(on_read):.2f}), protocol {args.protocol}, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, data {dataset.source}")
    print(f"{'what':<28}{'accuracy':>10}{'seconds':>10}{'s/question':>12}")
    print(f"{'with prefix reuse':<28}{sum(on_scores) / len(items):>10.4f}{on_s:>10.1f}{on_s / len(items):>12.2f}")
    print(f"{'without (full prompts)':<28}{sum(off_scores) / len(items):>10.4f}{off_s:>10.1f}{off_s / len(items):>12.2f}")
    print(f"speed-up: {off_s / on_s:.2f}x; questions on a cached prefix: {on_run['reused']}/{len(items)}; "
          f"max |logit difference| {gap:.2e}")
    print(f"same predictions: {on_out == off_out}; same scores: {on_scores == off_scores}")
    if args.protocol == "strict" and not letter_tokens(loaded.tokenizer)[0]:
        kick = [MMLU.predictions(loaded.tokenizer, r, "kick") for r in (on_read, off_read)]
        accuracy = [sum(o[-1:] == i.answers[0] for i, o in zip(items, k)) / len(items) for k in kick]
        print(f"kick protocol on the same logits: accuracy {accuracy[0]:.4f} (reuse) / {accuracy[1]:.4f} (full)")
    if on_out != off_out or on_scores != off_scores:
        raise SystemExit("prefix reuse changed the predictions")


if __name__ == "__main__":
    main()
