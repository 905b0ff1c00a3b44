"""orderings.py's experiments: what each runs (tasks, compressors, ratios, shots) and how many items."""

from __future__ import annotations

KNOWLEDGE = ("factoid_qa", "mmlu")

# (name, tasks, compressors, ratios, shots): priority order. Factoid QA and TriviaQA with --shots examples (the
# 0.5B model answers almost nothing zero-shot); MMLU with its own 5 (--kick-shots 0), where the model is above
# chance (at 1-2 shots it is not, significantly)
EXPERIMENTS = [
    ("quant-vs-prune-factoid", "factoid_qa", "rtn,magnitude", "w8,w4g128,0.5", "shots"),
    ("quant-vs-prune-mmlu", "mmlu", "rtn,magnitude", "w8,w4g128,0.5", 0),
    ("pruners-factoid", "factoid_qa", "wanda,sparsegpt", "0.5", "shots"),
    ("pruners-mmlu", "mmlu", "wanda,sparsegpt", "0.5", 0),
    ("icrqa", "icrqa", "magnitude", "0.3", "shots"),
    ("perplexity", "perplexity", "magnitude", "0.1,0.3,0.5", 0),
    ("knowledge-low-factoid", "factoid_qa", "magnitude", "0.1,0.3", "shots"),
    ("knowledge-low-mmlu", "mmlu", "magnitude", "0.1,0.3", 0),
]


def shots_of(experiment, args) -> int:
    return args.shots if experiment[4] == "shots" else experiment[4]


def n_of(task: str, args) -> int:
    """Items per task: --n, perplexity's own --ppl-n (a perplexity item is a long text scored whole)."""
    return args.ppl_n if task.split(":")[0] == "perplexity" and args.ppl_n else args.n
