"""orderings.py, reading the results: the cases the experiments ask for, rebuilt from the plugin's cache
(dense baselines and flip reports), with the gate's verdict and the per-item scores for paired differences."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from _orderings_plan import EXPERIMENTS, n_of

from pytest_kick import compress  # (no torch: names, ratio kinds and the gate only)
from pytest_kick.compress import spec
from pytest_kick.stats import mcnemar_exact


def expected(args) -> list[tuple[str, str, str | None]]:
    """Every (task variant, compressor, ratio) the experiments ask for, dense included (compressor "dense")."""
    from pytest_kick import tasks

    wanted = []
    for _, task_list, compressors, ratios, _ in EXPERIMENTS:
        for family in task_list.split(","):
            for task in tasks.expand(family):
                wanted.append((task, "dense", None))
                wanted += [
                    (task, c, r)
                    for c in compressors.split(",")
                    for r in ratios.split(",")
                    if compress.info(c).accepts(spec.parse(r))
                ]
    return list(dict.fromkeys(wanted))


def dense_baseline(task: str, args):
    """(path, result) of the newest cached dense baseline of ``task`` at --n items, or None."""
    from pytest_kick.baseline import safe_name

    folder = Path(args.cache_dir) / "baselines" / safe_name(args.model)  # named as BaselineStore.path names them
    for path in sorted(folder.glob(f"{safe_name(task)}-*.json"), key=lambda p: -p.stat().st_mtime):
        body = json.loads(path.read_text())
        if (
            body["key"]["task"] == task
            and body["key"]["n"] == n_of(task, args)
            and (task != "mmlu" or not args.mmlu_data_dir or body["key"]["data"]["source"].startswith("local:"))
        ):
            return path, body["result"]
    return None


def load_cases(args) -> tuple[dict, dict]:
    """(task, compressor, ratio) -> a case like the JSON report's, computed from the plugin's cache: the dense
    baseline and the case's flip report, written as each case finishes (so a session cut short still counts).
    The verdict is the gate's own (pytest_kick.gate.judge, 5 % relative, point), recomputed from them."""
    from pytest_kick import gate, tasks

    cases = {}
    for task, compressor, ratio in expected(args):
        t = tasks.get(task)
        found = dense_baseline(task, args)
        if found is None:
            continue
        path, dense = found
        base = {
            "task": task,
            "compressor": compressor,
            "ratio": ratio,
            "n": len(dense["scores"]),
            "dense": tasks.figure(t, dense["scores"]),
            "baseline_path": str(path),
            "metric": t.metric,
        }
        if compressor == "dense":
            cases[(task, compressor, ratio)] = base
            continue
        scores = per_item(base, Path(args.cache_dir), args.model, dense)
        if scores is None:
            continue
        v = gate.judge(
            task=task,
            label=f"{compressor}@{ratio}",
            dense=dense["scores"],
            compressed=scores,
            tolerance=gate.Tolerance(0.05),
            higher_is_better=t.higher_is_better,
            floor=t.floor,
            metric=t.metric,
            figure=getattr(t, "figure", None),
        )
        cases[(task, compressor, ratio)] = {
            **base,
            "compressed": v.compressed,
            "drop": v.drop,
            "drop_low": v.drop_low,
            "drop_high": v.drop_high,
            "verdict": v.status,
            "p_value": v.p_value,
            "lost": v.lost,
            "gained": v.gained,
        }
    return cases, {"protocol": "strict", "stat": "point"}


def per_item(case: dict, cache_dir: Path, model_name: str, dense: dict | None = None) -> list[float] | None:
    """A compressed case's per-item scores: dense's, with its flip report's changed items applied; None when
    the case has not run (no flip report, or one from another item set)."""
    if dense is None:
        dense = json.loads(Path(case["baseline_path"]).read_text())["result"]
    scores = dict(zip(dense["item_ids"], dense["scores"]))
    if case["compressor"] != "dense":
        flips = (
            cache_dir
            / "reports"
            / model_name
            / f"{case['task'].replace(':', '-')}-{case['compressor']}-{case['ratio'].replace(':', 'of')}.jsonl"
        )
        if not flips.exists() or flips.stat().st_mtime < Path(case["baseline_path"]).stat().st_mtime:
            return None
        rows = [json.loads(line) for line in flips.read_text().splitlines()]
        if any(row["id"] not in scores for row in rows) or (
            case["metric"] == "perplexity" and len(rows) != len(scores)
        ):  # from another item set
            return None
        for row in rows:
            scores[row["id"]] = row["compressed_score"]
    return [scores[i] for i in dense["item_ids"]]


def paired_difference(a: list[float], b: list[float], boot: int = 2000, seed: int = 0):
    """Mean of a - b and its 95 % paired-bootstrap interval."""
    rng = random.Random(seed)
    n = len(a)
    diffs = [x - y for x, y in zip(a, b)]
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(boot))
    return sum(diffs) / n, means[int(0.025 * boot)], means[int(0.975 * boot) - 1]


def exact_paired_p(a: list[float], b: list[float]) -> tuple[float, str]:
    """(two-sided p, test): exact McNemar on 0/1 scores; otherwise the exact sign test on the items that differ
    (ties dropped), both conditional on the discordant items, so exact at any count."""
    if all(x in (0, 1) for x in (*a, *b)):
        return mcnemar_exact(a, b), "McNemar"
    wins = sum(x > y for x, y in zip(a, b))
    losses = sum(x < y for x, y in zip(a, b))
    n = wins + losses
    if n == 0:
        return 1.0, "sign"
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail), "sign"
