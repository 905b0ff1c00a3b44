"""--kick-plan: before anything is compressed, what each task's item budget can show.

Per (model, task): the budget, and the smallest relative drop the sequential gate shows as *not matching* with
80 % power at the case's alpha. The gate's last look (sequential.py) is a one-sided normal bound of the mean of
Z at the alpha the early looks leave, so a drop d is shown with power 0.8 when

    E[Z](d) + (z_alpha' + z_0.8) * sd(Z)(d) / sqrt(n) <= 0.

For 0/1 scores, Z's law follows from two rates: dense accuracy D, and how often compressed answers an item right
that dense got wrong (the gain rate g): compressed keeps a dense-right answer with probability
``1 - d - g (1 - D) / D`` (the expected relative drop is then exactly d, as in benchmarks/gate_power.py). D comes
from a cached dense baseline of the same items when there is one, else ``DEFAULT_DENSE``; g is ``DEFAULT_GAIN``.
For other bounded scores the per-item difference is taken to spread as the dense scores do (sd of dense, from the
cache, else a quarter of the score range).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

from pytest_kick import sequential, sequential_run, tasks
from pytest_kick.baseline import safe_name
from pytest_kick.hashing import json_hash

DEFAULT_DENSE = 0.5
DEFAULT_GAIN = 0.02
POWER = 0.8


def cached_dense(cache_dir: Path, model_name: str, task: str, item_ids) -> list[float] | None:
    """The dense scores of a cached baseline of these items (any engine or version: the plan only needs rates)."""
    wanted = json_hash(list(item_ids))
    for path in sorted((cache_dir / "baselines" / safe_name(model_name)).glob(f"{safe_name(task)}-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            key, result = data["key"], data["result"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if key.get("task") == task and key.get("items") == wanted:
            scores = result.get("scores") or []
            if scores and all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
                return [float(s) for s in scores]
    return None


def _z_moments(drop: float, dense: float, gain: float, tol: float) -> tuple[float, float] | None:
    """(mean, sd) of Z = c - (1 - tol) d per item for 0/1 scores at true relative drop ``drop``."""
    keep = 1 - drop - gain * (1 - dense) / dense
    if not 0 <= keep <= 1:
        return None
    outcomes = [  # (probability, z)
        (dense * keep, tol),
        (dense * (1 - keep), -(1 - tol)),
        ((1 - dense) * gain, 1.0),
    ]
    mean = sum(p * z for p, z in outcomes)
    second = sum(p * z * z for p, z in outcomes)
    return mean, math.sqrt(max(second - mean * mean, 0.0))


def smallest_drop(n: int, alpha: float, tol: float, dense: float, binary: bool, spread: float) -> float | None:
    """The smallest relative drop shown not matching with power POWER at budget n (None: none up to 100 %)."""
    q = NormalDist().inv_cdf(1 - alpha * (1 - sequential.EARLY_SHARE)) + NormalDist().inv_cdf(POWER)
    for step in range(1, 1001):
        drop = step / 1000
        if binary:
            moments = _z_moments(drop, dense, DEFAULT_GAIN, tol)
            if moments is None:
                return None
            mean, sd = moments
        else:
            mean, sd = dense * (tol - drop), spread
        if mean + q * sd / math.sqrt(n) <= 0:
            return drop
    return None


def lines(runtime) -> list[str]:
    """The plan, a line per (model, task)."""
    config = runtime.config
    out = [
        f"pytest-kick plan: --kick-stat {config.stat}, alpha {config.alpha:g} per decision "
        f"(--kick-family {config.family}), power {POWER:g}; rates from cached dense baselines where found, "
        f"else dense {DEFAULT_DENSE:g} and gain rate {DEFAULT_GAIN:g}"
    ]
    from pytest_kick.models import registry  # lazy: only --kick-plan needs it here

    for model in config.models:
        name = registry.resolve(model).name
        for task_name in config.tasks:
            task = runtime.task(task_name)
            _, _, items = runtime.data(task_name)
            n = len(items)
            tolerance = config.tolerance.for_task(task_name)
            found = cached_dense(config.cache_dir, name, task_name, [i.id for i in items])
            if not sequential_run.applies(runtime, task_name):
                out.append(f"  {name} {task_name}: {n} items; judged by ci on every item (no bounded score)")
                continue
            low, high = tasks.score_range(task)
            scores = found or []
            binary = all(s in (0.0, 1.0) for s in scores) and (low, high) == (0.0, 1.0)
            dense = sum(scores) / len(scores) if scores else DEFAULT_DENSE * (high - low) + low
            spread = _sd(scores) if len(scores) > 1 else (high - low) / 4
            relative = tolerance.kind == "relative"
            tol = tolerance.value if relative else tolerance.value / max(dense, 1e-9)
            alpha = sequential_run.case_alpha(config, runtime.family_size)
            drop = smallest_drop(n, alpha, tol, dense, binary, spread) if dense > 0 else None
            shown = "no drop up to 100%" if drop is None else f"a drop of {drop * 100:.1f}%"
            source = "cached dense" if found else "default dense"
            out.append(
                f"  {name} {task_name}: {n} items (rounds {', '.join(map(str, sequential.looks(n)))}); "
                f"{source} {dense:.3f}; tolerance {tolerance}; shows {shown} with {POWER * 100:g}% power"
            )
    return out


def _sd(values) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
