"""Planning scored forward passes: which tokens run once, which run per request. Pure Python, no torch.

A *job* is a token sequence to feed and the positions whose next-token log-probabilities are read (a
log-likelihood request feeds context + continuation minus its last token and reads the continuation's
positions; a rolling window likewise). Two savings are found from the tokens alone, whatever task made
them:

1. A job whose fed tokens are a prefix of another job's is answered from that job's pass (a causal model's
   states at a position depend only on the tokens up to it). Multiple choice with one-token options
   ("Answer:" + " A" .. " D") then costs one pass per question, not four.
2. The remaining sequences, sorted, form a trie of shared prefixes. Each group of sequences that share a
   prefix runs that prefix once, and its members run only their own tokens on a copy of the prefix's
   key/value cache. Where to cut the trie is decided by cost (tokens fed, plus a per-group overhead):
   MMLU's 5-shot block is shared by a subject's questions, a header shared by every subject is not worth
   a group of its own, and a user's few-shot task gets the same treatment without asking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

GROUP_OVERHEAD = 32  # tokens' worth of cost for one more group (a prefix pass, a cache copy per batch)
PACK_TOKENS = 256  # tokens packed into one pass (attention over a packed row grows with its square)


@dataclass(frozen=True)
class Job:
    """Feed ``tokens``; read the log-probability of ``targets[k]`` at position ``first + k``."""

    tokens: tuple[int, ...]
    first: int
    targets: tuple[int, ...]

    def __post_init__(self):
        if not self.targets or self.first < 0 or self.first + len(self.targets) > len(self.tokens):
            raise ValueError(
                f"job reads positions {self.first}..{self.first + len(self.targets) - 1} "
                f"of {len(self.tokens)} fed tokens"
            )


@dataclass
class Leaf:
    """One sequence to run: the longest fed tokens of the jobs folded into it."""

    tokens: tuple[int, ...]
    jobs: list[int] = field(default_factory=list)
    first: int = 0  # the earliest position any of its jobs reads: a shared prefix must stop before it


@dataclass(frozen=True)
class Group:
    """Leaves run on one shared prefix of ``shared`` tokens (0: no prefix, each leaf runs in full)."""

    shared: int
    leaves: tuple[int, ...]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def fold(jobs: Sequence[Job]) -> list[Leaf]:
    """Leaves: jobs whose fed tokens are a prefix of another job's are folded into the longer one."""
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].tokens)
    leaves: list[Leaf] = []
    pending: list[int] = []  # jobs waiting for a longer sequence that starts with theirs
    for k, i in enumerate(order):
        pending.append(i)
        nxt = order[k + 1] if k + 1 < len(order) else None
        tokens = jobs[i].tokens
        if nxt is not None and jobs[nxt].tokens[: len(tokens)] == tokens:
            continue  # sorted order: a sequence a prefix of another is directly followed by one it prefixes
        leaves.append(Leaf(tokens, pending, min(jobs[j].first for j in pending)))
        pending = []
    return leaves


def group(leaves: Sequence[Leaf], overhead: int = GROUP_OVERHEAD) -> list[Group]:
    """Cut the trie of the (sorted) leaves into groups at least cost; every leaf in exactly one group."""
    if not leaves:
        return []
    order = sorted(range(len(leaves)), key=lambda i: leaves[i].tokens)
    lcp = [common_prefix(leaves[a].tokens, leaves[b].tokens) for a, b in zip(order, order[1:])]
    groups: list[Group] = []
    singles: list[int] = []

    def best(lo: int, hi: int) -> tuple[int, list[tuple[int, int, int]]]:
        """(cost, [(lo, hi, shared)]) for order[lo:hi]: one group on their common prefix, or the best
        plans of the sub-tries below it (split where the common prefix is shortest)."""
        members = order[lo:hi]
        length = sum(len(leaves[i].tokens) for i in members)
        if hi - lo == 1:
            return length, [(lo, hi, 0)]
        cut = min(lcp[lo : hi - 1])
        starts = [lo] + [k + 1 for k in range(lo, hi - 1) if lcp[k] == cut]
        split_cost, split_plan = 0, []
        for a, b in zip(starts, starts[1:] + [hi]):
            cost, plan = best(a, b)
            split_cost += cost
            split_plan += plan
        shared = min(cut, min(leaves[i].first for i in members))
        if shared > 0:
            together = overhead + shared + length - shared * len(members)
            if together <= split_cost:
                return together, [(lo, hi, shared)]
        return split_cost, split_plan

    for lo, hi, shared in _deep(best, len(order)):
        if shared and hi - lo > 1:
            groups.append(Group(shared, tuple(order[lo:hi])))
        else:
            singles.extend(order[lo:hi])
    if singles:
        groups.append(Group(0, tuple(sorted(singles))))
    return groups


def pack(lengths: Sequence[int], budget: int = PACK_TOKENS) -> list[list[int]]:
    """Rows of indices into ``lengths``, in order, each row's lengths summing to at most ``budget`` (a longer
    one alone in its row): sequences run back to back in one pass instead of padded to the longest."""
    rows: list[list[int]] = []
    used = budget
    for i, n in enumerate(lengths):
        if used + n > budget:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


def _deep(best, n: int):
    """best(0, n), with the recursion limit raised for deep tries (long chains of nested prefixes)."""
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * n + 100))
    try:
        return best(0, n)[1]
    finally:
        sys.setrecursionlimit(limit)
