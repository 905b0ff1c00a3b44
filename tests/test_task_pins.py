"""Every bundled task gives, through the request seam and the local engine, the per-item results the code
gave before the seam existed (tests/data/task_pins_tiny.json, made with commit cebbbc8 on tiny-random-llama,
batch 16): the same outputs, the same scores.

Strict perplexity changed on purpose, twice: the rolling request scored every token of an item (the old code
only the first window), token-weighted; then the corpus became one token sequence scored in blocks that share a
window start (tasks/perplexity_stream.py), a limited run consecutive items. tests/test_perplexity_stream.py pins
it against a forward pass per block written from that definition.

The kick cases of factoid_qa, mmlu and icrqa changed on purpose when kick became the LLM-KICK repo's run
(first items in file order, no cap on the factoid budget, the repo's TriviaQA extraction):
tests/test_kick_protocol.py pins them against the repo's code instead.
"""

import json
from pathlib import Path

import pytest

from pytest_kick import tasks
from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.tasks.base import Settings

PINS = json.loads((Path(__file__).parent / "data" / "task_pins_tiny.json").read_text(encoding="utf-8"))
CASES = {f"{c['task']}-{c['protocol']}": c for c in PINS["cases"]}
TOLERANCE = 1e-6  # scores are accuracies and ROUGE of identical texts: equal; NLLs within float rounding


@pytest.fixture(scope="module")
def engine(tiny):
    model, tokenizer = tiny
    return LocalEngine(model, tokenizer, "cpu", PINS["batch_size"])


def run_case(case, engine):
    task = tasks.get(case["task"])
    settings = Settings(protocol=case["protocol"], shots=case["shots"], limit=case["limit"])
    shots, items = task.split(task.load(settings), settings)
    assert [i.id for i in items] == case["items"]
    return task, items, settings, task.evaluate(items, shots, settings, Runner(engine))


CHANGED = {"perplexity-strict", "factoid_qa-kick", "mmlu-kick", "icrqa:closed-kick", "icrqa:open-kick"}


@pytest.mark.parametrize("name", [n for n in CASES if n not in CHANGED])
def test_task_results_are_unchanged_through_the_seam(name, engine, one_thread):
    case = CASES[name]
    _, _, _, (scores, outputs) = run_case(case, engine)
    assert outputs == case["outputs"]
    assert scores == pytest.approx(case["scores"], abs=TOLERANCE)


def test_mmlu_letter_loglikelihoods_keep_the_old_logit_gaps(engine, one_thread):
    """strict MMLU now asks four log-likelihoods; the gaps between letters equal the old logit gaps (byte
    tokens: " A" is " " + "A", so each log-likelihood is a shared term plus the letter's logit)."""
    case = CASES["mmlu-strict"]
    task = tasks.get("mmlu")
    settings = Settings(limit=case["limit"])
    shots, items = task.split(task.load(settings), settings)
    asked = []

    class Recording(Runner):
        def __call__(self, requests):
            answers = super().__call__(requests)
            asked.extend(answers)
            return answers

    task.evaluate(items, shots, settings, Recording(engine))
    used = task.fit(items, shots, settings, Runner(engine)).shots_used
    assert len(asked) == 4 * len(items) and sum(used.values()) < 5 * len(items)  # shots were dropped
    for n, logits in enumerate(PINS["mmlu_strict_letter_logits"]):
        new = [asked[4 * n + c][0] - asked[4 * n][0] for c in range(4)]
        assert new == pytest.approx([x - logits[0] for x in logits], abs=1e-5)
