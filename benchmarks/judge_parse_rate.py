"""How often a local model, used as the judge, gives a reply the judge parsers can read.

Run by hand, never from the tests:

    .venv/bin/python benchmarks/judge_parse_rate.py [--model smollm2-135m] [--items 3]
        [--protocols kick,strict] [--max-new-tokens 256]

Judges the first ``--items`` summaries of the ``small`` bucket with each protocol. The summaries judged
are lead-3 (the story's first three sentences): a real, imperfect summary, so the judge has something to
rate. Prints, per protocol: asks, replies read at the first ask, replies read after the re-asks (with
the format reminder), judge errors per item, the mean score of the items judged, and wall time. The
replies are cached under ``--cache-dir`` (default a fresh temporary directory, so every run generates).
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import time
from pathlib import Path


def lead3(story: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", story.strip())
    return " ".join(sentences[:3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--protocols", default="kick,strict")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    from pytest_kick.engines.local import LocalEngine as Engine
    from pytest_kick.judge import build_scorer
    from pytest_kick.judge.local import local_backend
    from pytest_kick.judge.protocols import bundled_dir
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.summarization import BUNDLED, load_stories

    loaded = load(registry.resolve(args.model), Path(".kick"), "cpu", "float32", notify=print)
    engine = Engine(loaded.model, loaded.tokenizer, "cpu", batch_size=4)
    stories = [s for s in load_stories(bundled_dir() / BUNDLED) if s.bucket == "small"][: args.items]
    replies = [(lead3(s.question),) for s in stories]
    cache = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="kick-judge-"))
    identity = f"{args.model}:{sorted(loaded.identity.items())}"
    print(f"judge {args.model}, {len(stories)} summaries, max {args.max_new_tokens} new tokens, cache {cache}")
    for protocol in args.protocols.split(","):
        backend = local_backend(engine, args.model, identity, args.max_new_tokens)
        scorer = build_scorer("summarization", "small", protocol, backend, cache)
        started = time.perf_counter()
        judgments = scorer.prepare(stories, replies)
        seconds = time.perf_counter() - started
        stats = scorer.judge.stats
        asks = stats.asks
        first_read = asks - stats.unreadable_first
        read = asks - stats.failed_asks
        scores = [j.score for j in judgments if not math.isnan(j.score)]
        mean = f"{sum(scores) / len(scores):.2f}" if scores else "-"
        print(
            f"{protocol:6s}: asks {asks}, read at first ask {first_read}/{asks} ({first_read / asks:.0%}), "
            f"read after re-asks {read}/{asks} ({read / asks:.0%}); judge errors {scorer.item_errors}/"
            f"{len(stories)} items; mean score {mean}; generated {stats.requests} replies in {seconds:.0f} s"
        )
        for judgment in judgments:
            first = judgment.explanation.split("\n", 2)[1][:100] if "\n" in judgment.explanation else ""
            print(f"    score {judgment.score:.2f}  first reply: {first!r}")


if __name__ == "__main__":
    main()
