"""Error rates and power of the gate's decision rules, on simulated paired 0/1 scores.

Run by hand, never from the tests (from the repository root):

    .venv/bin/python benchmarks/gate_power.py

Options: --dense-acc 0.4  --gain 0.02  --trials 200  --session-trials 100  --seed 0.

Each trial draws n items. Dense answers each one correctly with probability --dense-acc. Compressed keeps a
dense-correct answer with probability ``keep`` and gets a dense-wrong item right with probability --gain, where
``keep = 1 - d - gain * (1 - dense_acc) / dense_acc`` makes the expected relative drop exactly d (gains
included). The rules judge each trial against the 5 % relative tolerance:

* ``point``: fail when the relative drop of the means is above 0.05 (every item);
* ``ci``: fail when the one-sided 95 % paired-bootstrap lower bound of the drop is above 0.05 (every item);
* ``sequential``: pytest_kick.sequential at alpha 0.05, rounds of 32, 64, ... items, stopping at a decision;
* ``seq+session``: the same with alpha split over a 40-case session (--kick-family session).

Single cases: per n, the false-fail rate at true drop 0 and at the tolerance (the boundary, where a rule with
error rate alpha fails at most alpha of the time), the power at 2 x and 4 x tolerance, and the mean items used.
Then sessions of 40 mixed cases (20 lossless, 10 at the tolerance, 5 at 2 x, 5 at a 35 % drop, the demo's),
n = 1000 each: how often any of the 30 cases within tolerance fails (the family's error), the share of the 10
broken ones caught, and the items used. Then the targets the sequential rule is held to.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pytest_kick import sequential
from pytest_kick.stats import drop_lower_bound, relative_drop

TOLERANCE = 0.05
ALPHA = 0.05
SIZES = (100, 1000, 2000)
DROPS = (0.0, TOLERANCE, 2 * TOLERANCE, 4 * TOLERANCE, 0.35)
N_BOOT = 1000
SESSION = ((0.0, 20), (TOLERANCE, 10), (2 * TOLERANCE, 5), (0.35, 5))  # (true drop, cases) in a 40-case session
SESSION_N = 1000
BOUNDARY = sequential.Boundary(TOLERANCE, True, True, 0.0, 1.0)
RULES = ("point", "ci", "sequential", "seq+session")


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


def judge(rule: str, rng: random.Random, dense, compressed, family: int) -> tuple[bool, int]:
    """(fails, items used) of one rule on one simulated case."""
    n = len(dense)
    if rule == "point":
        return relative_drop(sum(dense) / n, sum(compressed) / n) > TOLERANCE, n
    if rule == "ci":
        bound = drop_lower_bound(dense, compressed, confidence=0.95, n_boot=N_BOOT, seed=rng.randrange(2**32))
        return bound > TOLERANCE, n
    alpha = ALPHA / family if rule == "seq+session" else ALPHA
    decision = sequential.decide(dense, compressed, BOUNDARY, alpha)
    return decision.status == sequential.NOT_MATCHING, decision.used


def single_cases(rng: random.Random, args) -> dict:
    """{(n, drop, rule): (fail rate, mean items used)}."""
    rates = {}
    for n in SIZES:
        for drop in DROPS:
            keep = keep_probability(args.dense_acc, args.gain, drop)
            found = {rule: [0, 0] for rule in RULES}
            for _ in range(args.trials):
                dense, compressed = simulate(rng, n, args.dense_acc, keep, args.gain)
                for rule in RULES:
                    fails, used = judge(rule, rng, dense, compressed, family=40)
                    found[rule][0] += fails
                    found[rule][1] += used
            for rule, (fails, used) in found.items():
                rates[n, drop, rule] = (fails / args.trials, used / args.trials)
    return rates


def sessions(rng: random.Random, args, mix=SESSION) -> dict:
    """{rule: (P(any case within tolerance fails), share of broken cases caught, mean items used per case)}."""
    size = sum(count for _, count in mix)
    out = {rule: [0, 0, 0] for rule in RULES}
    broken = max(1, sum(count for drop, count in mix if drop > TOLERANCE))
    for _ in range(args.session_trials):
        any_false = {rule: False for rule in RULES}
        for drop, count in mix:
            keep = keep_probability(args.dense_acc, args.gain, drop)
            for _ in range(count):
                dense, compressed = simulate(rng, SESSION_N, args.dense_acc, keep, args.gain)
                for rule in RULES:
                    fails, used = judge(rule, rng, dense, compressed, family=size)
                    out[rule][2] += used
                    if drop <= TOLERANCE:
                        any_false[rule] |= fails
                    else:
                        out[rule][1] += fails
        for rule in RULES:
            out[rule][0] += any_false[rule]
    t = args.session_trials
    return {rule: (v[0] / t, v[1] / (broken * t), v[2] / (size * t)) for rule, v in out.items()}


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-acc", type=float, default=0.4, help="dense accuracy (default 0.4)")
    parser.add_argument("--gain", type=float, default=0.02, help="P(compressed right | dense wrong) (default 0.02)")
    parser.add_argument("--trials", type=int, default=200, help="simulated single cases per cell (default 200)")
    parser.add_argument("--session-trials", type=int, default=100, help="simulated 40-case sessions (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    args = parser.parse_args(argv)
    if not 0 < args.dense_acc < 1 or not 0 <= args.gain <= 1 or args.trials < 1 or args.session_trials < 1:
        parser.error("need 0 < --dense-acc < 1, 0 <= --gain <= 1 and at least one trial")

    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(
        f"gate power: dense acc {args.dense_acc:g}, gain {args.gain:g}, tolerance {TOLERANCE:g} relative, alpha "
        f"{ALPHA:g}, {args.trials} trials per cell, seed {args.seed}; ci = one-sided 95 % bootstrap bound "
        f"(n_boot={N_BOOT}); seq+session = sequential at alpha / 40"
    )
    rates = single_cases(rng, args)
    print("\nsingle cases: fail rate (mean items used)")
    header = f"{'n':>5}  {'true drop':>9}  " + "  ".join(f"{rule:>18}" for rule in RULES)
    print(header)
    print("-" * len(header))
    for n in SIZES:
        for drop in DROPS:
            cells = "  ".join(f"{rates[n, drop, r][0]:>9.3f} ({rates[n, drop, r][1]:>6.0f})" for r in RULES)
            print(f"{n:>5}  {drop:>9.2f}  {cells}")
    session = sessions(rng, args)
    lossless = sessions(rng, args, ((0.0, 40),))
    for mix, found in ((SESSION, session), (((0.0, 40),), lossless)):
        print(
            f"\n{args.session_trials} sessions of 40 cases at n={SESSION_N} "
            f"({', '.join(f'{c} at drop {d:g}' for d, c in mix)}):"
        )
        print(f"{'rule':>12}  {'P(any within-tolerance case fails)':>35}  {'broken caught':>13}  {'items used':>10}")
        for rule, (family_error, caught, used) in found.items():
            shown = f"{caught:>13.3f}" if any(d > TOLERANCE for d, _ in mix) else f"{'-':>13}"
            print(f"{rule:>12}  {family_error:>35.3f}  {shown}  {used:>10.0f}")
    print(f"\n({time.perf_counter() - started:.1f} s)")

    print("\ntargets for sequential at alpha 0.05:")
    worst = max(rates[n, d, "sequential"][0] for n in SIZES for d in (0.0, TOLERANCE))
    print(f"  false-fail <= 0.05 at drop 0 and at the tolerance, every n: worst {worst:.3f}, {met(worst <= ALPHA)}")
    for n in (1000, 2000):
        seq, ci = rates[n, 2 * TOLERANCE, "sequential"][0], rates[n, 2 * TOLERANCE, "ci"][0]
        print(f"  power at 2 x tol within 0.10 of ci at n={n}: {seq:.3f} vs {ci:.3f}, {met(seq >= ci - 0.10)}")
    power4 = rates[1000, 4 * TOLERANCE, "sequential"][0]
    print(f"  power >= 0.9 at 4 x tol, n=1000: {power4:.3f}, {met(power4 >= 0.9)}")
    used = rates[1000, 0.35, "sequential"][1]
    print(f"  a 35 % drop decided on <= 25 % of 1000 items on average: {used:.0f} items, {met(used <= 250)}")
    for what, found in (("40 lossless cases", lossless), ("the mixed session's 30 within tolerance", session)):
        family_error = found["seq+session"][0]
        print(
            f"  {what} (--kick-family session): any false fail in <= 5 % of sessions: "
            f"{family_error:.3f}, {met(family_error <= ALPHA)}"
        )


if __name__ == "__main__":
    main()
