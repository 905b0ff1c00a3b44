"""The sequential gate in a session: a compressed case evaluated in rounds until its decision is reached.

The items of the budget are put in one seeded random order per task (the same for every variant of the task,
so variants are compared on the same first items). Round k evaluates the items up to ``sequential.looks``'s
k-th look; after each round the gate (``Runtime.verdict``, stat ``sequential``) decides on the pairs seen so
far, and the case stops once it is matching or not matching. The result holds only the items evaluated, in
evaluation order: items never evaluated are never reported as scored. The gate, given the same pairs, reaches
the same decision again (``sequential.decide`` stops at the first decisive look).

The family (``--kick-family session``) splits alpha over the session's compressed cases (Bonferroni): a case's
decision is made, and reported, as soon as its test ends, so Holm's step-down (which orders every case's
evidence first) cannot apply; Bonferroni is the valid rule for decisions made one at a time.
"""

from __future__ import annotations

import random

from pytest_kick import compress, search, sequential, tasks
from pytest_kick.baseline import TaskResult


def applies(runtime, task_name: str) -> bool:
    """Whether a case of this task is decided sequentially: the session's rule, and a task whose scores are bounded
    and averaged as they are (see gate.sequential_applies)."""
    if runtime.config.stat != "sequential":
        return False
    task = runtime.task(task_name)
    return tasks.score_range(task) is not None and getattr(task, "figure", None) is None


def family_size(config) -> int:
    """How many compressed decisions a session can make, from its options: every grid case (recovered ones
    included) and, for --kick-search, every level of each searched axis (a search asks fewer). Counted from the
    options, not the collected items, so every xdist worker and the plan agree; deselecting items only makes
    the split more cautious."""
    per_task = len(config.variants) * (1 + len(config.recover))
    searched = 0
    for compressor in config.searched:  # the levels of its axis (search_run.axis_of)
        quantizer = compress.info(compressor).quantizer
        searched += (
            len(search.QUANT_LADDER) if quantizer else int(search.SPARSITY_LIMIT / config.search_resolution + 1e-9)
        )
    return max(1, len(config.models) * len(config.tasks) * (per_task + searched))


def case_alpha(config, family_size: int) -> float:
    """Each decision's error rate: --kick-alpha, or its share of the session's under --kick-family session."""
    if config.family == "session":
        return config.alpha / max(1, family_size)
    return config.alpha


def order(items, seed: int, task_name: str) -> list:
    """The task's items in the seeded evaluation order (one order per task and seed)."""
    shuffled = list(items)
    random.Random(f"kick-sequential:{seed}:{task_name}").shuffle(shuffled)
    return shuffled


def pick(result: TaskResult, item_ids) -> TaskResult:
    """``result`` restricted to ``item_ids``, in their order (dense paired with a case that stopped early)."""
    at = {item_id: k for k, item_id in enumerate(result.item_ids)}
    missing = [i for i in item_ids if i not in at]
    if missing:
        raise KeyError(missing[0])
    ks = [at[i] for i in item_ids]
    return TaskResult(
        result.task, result.metric, list(item_ids), [result.scores[k] for k in ks], [result.outputs[k] for k in ks]
    )


def evaluate_in_rounds(runtime, case, dense: TaskResult, tolerance, floor) -> TaskResult:
    """The case's results on the items it needed: rounds of the task's seeded order until the gate decides."""
    _, _, items = runtime.data(case.task)
    by_id = {item.id: item for item in items}
    ordered = [by_id[i] for i in order(dense.item_ids, runtime.config.seed, case.task) if i in by_id]
    done: list[TaskResult] = []
    seen = 0
    for look in sequential.looks(len(ordered)):
        done.append(runtime.evaluate(case, ordered[seen:look]))
        seen = look
        partial = _joined(done)
        paired, kept, screen = runtime.judged(case, pick(dense, partial.item_ids), partial)  # judge errors
        verdict = runtime.verdict(case, paired, kept, tolerance, floor, len(ordered), screen)
        if verdict.status.value in (sequential.MATCHING, sequential.NOT_MATCHING) or seen == len(ordered):
            break
        runtime.ui.message(
            f"{case.task} {case.model_name} {case.label}: undecided on {seen} of {len(ordered)} items, "
            f"evaluating up to {min(len(ordered), 2 * seen)}"
        )
    return _joined(done)


def _joined(parts: list[TaskResult]) -> TaskResult:
    first = parts[0]
    return TaskResult(
        first.task,
        first.metric,
        [i for p in parts for i in p.item_ids],
        [s for p in parts for s in p.scores],
        [o for p in parts for o in p.outputs],
    )


def paired(runtime, case, dense: TaskResult, compressed: TaskResult) -> tuple[TaskResult, int | None]:
    """(dense paired with ``compressed``, the item budget): a sequential case's dense items in its evaluation order
    and the budget; any other case's dense results as they are, and None."""
    if not applies(runtime, case.task) or case.recovery or case.is_dense:
        return dense, None
    if list(dense.item_ids) == list(compressed.item_ids):
        return dense, len(dense.item_ids)
    try:
        return pick(dense, compressed.item_ids), len(dense.item_ids)
    except KeyError:  # the gate's own check names the mismatch
        return dense, None
