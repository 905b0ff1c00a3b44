"""Power of the gate's two decision rules, on simulated paired 0/1 scores.

Run by hand, never from the tests (from the repository root):

    .venv/bin/python benchmarks/gate_power.py

Options: --dense-acc 0.4  --gain 0.02  --trials 200  --seed 0  (about 15 s with the defaults on 2 cores).

Each trial draws n items. Dense answers each one correctly with probability --dense-acc. Compressed
keeps a dense-correct answer with probability ``keep`` and gets a dense-wrong item right with
probability --gain, where ``keep = 1 - d - gain * (1 - dense_acc) / dense_acc`` makes the expected
relative drop exactly d (gains included). Two rules judge each trial against the 5 % tolerance:

* ``point``: fail when the relative drop of the means is above 0.05;
* ``ci``: fail when the one-sided 95 % bootstrap lower bound of the drop
  (``drop_lower_bound(..., confidence=0.95, n_boot=1000)``) is above 0.05.

The table shows the fraction of trials that FAIL, per n and true drop, then checks the spec's targets:
a true drop of 2 x tolerance is caught with power >= 0.9 at n=500, and a true drop of 0 passes >= 95 %
of the time.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pytest_kick.stats import drop_lower_bound, relative_drop

TOLERANCE = 0.05
SIZES = (100, 500, 1000)
DROPS = (0.0, TOLERANCE, 2 * TOLERANCE)
N_BOOT = 1000
POWER_TARGET, POWER_N, PASS_TARGET = 0.9, 500, 0.95


def keep_probability(dense_acc: float, gain: float, drop: float) -> float:
    """P(compressed keeps a dense-correct answer) so that the expected relative drop is exactly ``drop``."""
    keep = 1 - drop - gain * (1 - dense_acc) / dense_acc
    if not 0 <= keep <= 1:
        raise SystemExit(f"no keep probability gives drop {drop} with dense acc {dense_acc} and gain {gain}")
    return keep


def simulate(rng: random.Random, n: int, dense_acc: float, keep: float, gain: float):
    dense = [1 if rng.random() < dense_acc else 0 for _ in range(n)]
    compressed = [(1 if rng.random() < keep else 0) if d else (1 if rng.random() < gain else 0) for d in dense]
    return dense, compressed


def fail_rates(rng: random.Random, n: int, dense_acc: float, keep: float, gain: float, trials: int):
    """(point fail rate, ci fail rate) over ``trials`` simulated dense/compressed pairs."""
    point_fails = ci_fails = 0
    for _ in range(trials):
        dense, compressed = simulate(rng, n, dense_acc, keep, gain)
        point = relative_drop(sum(dense) / n, sum(compressed) / n)
        point_fails += point > TOLERANCE
        bound = drop_lower_bound(dense, compressed, confidence=0.95, n_boot=N_BOOT, seed=rng.randrange(2**32))
        ci_fails += bound > TOLERANCE
    return point_fails / trials, ci_fails / trials


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-acc", type=float, default=0.4, help="dense accuracy (default 0.4)")
    parser.add_argument("--gain", type=float, default=0.02, help="P(compressed right | dense wrong) (default 0.02)")
    parser.add_argument("--trials", type=int, default=200, help="simulated trials per cell (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    args = parser.parse_args(argv)
    if not 0 < args.dense_acc < 1 or not 0 <= args.gain <= 1 or args.trials < 1:
        parser.error("need 0 < --dense-acc < 1, 0 <= --gain <= 1 and --trials >= 1")

    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(
        f"gate power: dense acc {args.dense_acc:g}, gain {args.gain:g}, tolerance {TOLERANCE:g} relative, "
        f"{args.trials} trials per row, seed {args.seed}, ci = one-sided 95 % bootstrap lower bound "
        f"(n_boot={N_BOOT})"
    )
    print("fail rate = fraction of trials the rule fails (wanted: low at drop 0, high at drop 2 x tol)")
    print()
    header = f"{'n':>6}  {'true drop':>9}  {'keep':>6}  {'point fail rate':>15}  {'ci fail rate':>12}"
    print(header)
    print("-" * len(header))
    rates = {}
    for n in SIZES:
        for drop in DROPS:
            keep = keep_probability(args.dense_acc, args.gain, drop)
            rates[n, drop] = fail_rates(rng, n, args.dense_acc, keep, args.gain, args.trials)
            point, ci = rates[n, drop]
            print(f"{n:>6}  {drop:>9.2f}  {keep:>6.3f}  {point:>15.3f}  {ci:>12.3f}")
    print()
    print(
        f"({time.perf_counter() - started:.1f} s; with {args.trials} trials a rate near 0.9 is uncertain "
        f"by about +-{1.96 * (0.09 / args.trials) ** 0.5:.2f})"
    )
    print()
    for rule, index in (("point", 0), ("ci", 1)):
        power = rates[POWER_N, 2 * TOLERANCE][index]
        passes = {n: 1 - rates[n, 0.0][index] for n in SIZES}
        print(
            f"{rule:>5}: target 'true drop 2 x tol caught with power >= {POWER_TARGET:g} at n={POWER_N}': "
            f"power {power:.3f}, {verdict(power >= POWER_TARGET)}"
        )
        pass_text = ", ".join(f"n={n} {p:.3f}" for n, p in passes.items())
        failing = [str(n) for n, p in passes.items() if p < PASS_TARGET]
        misses = f" (misses at n={', '.join(failing)})" if failing else ""
        print(
            f"{'':>5}  target 'true drop 0 passes >= {PASS_TARGET * 100:g} % of the time': "
            f"pass rate {pass_text}, {verdict(not failing)}{misses}"
        )


if __name__ == "__main__":
    main()
