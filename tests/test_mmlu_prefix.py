"""MMLU: shots dropped until the prompt fits the context, and the engine's prefix reuse giving the same results
as full prompts (tiny random LLaMA and SmolLM2-135M)."""

import mmlu_helpers
import pytest
from mmlu_helpers import Recording, pick

from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import MMLU, format_prefix, format_question

offline, one_thread, bundled = mmlu_helpers.offline, mmlu_helpers.one_thread, mmlu_helpers.bundled  # the fixtures


def test_shots_are_dropped_from_the_last_until_the_prompt_fits(tiny, bundled):
    _, dataset, dev = bundled
    model, tokenizer = tiny
    target = dataset.examples[0]
    shots = dev[target.subject]
    # byte-level tokenizer without BOS: one token per byte; strict's continuation " A" is two tokens, so a
    # prompt of n bytes needs a context of n + 2.
    sizes = [len((format_prefix(target.subject, shots[:k]) + format_question(target)).encode()) for k in range(6)]
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=2)
    task = MMLU()
    for context, expected in [(sizes[2] + 2, 2), (sizes[2] + 1, 1), (sizes[5] + 2, 5), (sizes[0] + 2, 0)]:
        engine.max_length = context
        run = Recording(engine)
        task.evaluate([target], shots, Settings(), run)
        fitted = task.fit([target], shots, Settings(), Runner(engine))
        assert fitted.shots_used == {target.id: expected} and fitted.truncated == 0, context
        assert run.asked[0].context == task.prompt(target, shots[:expected]) == fitted.prompts[0]
    engine.max_length = sizes[0]  # too long even without shots: sent without shots, the engine keeps its end
    scores, _ = task.evaluate([target], shots, Settings(), Runner(engine))
    fitted = task.fit([target], shots, Settings(), Runner(engine))
    assert fitted.shots_used == {target.id: 0} and fitted.truncated == 1 and len(scores) == 1


@pytest.mark.parametrize("protocol, batch_size", [("strict", 1), ("strict", 3), ("kick", 3)])
def test_prefix_reuse_matches_full_prompts_on_tiny_llama(tiny, bundled, protocol, batch_size):
    """Same letter log-likelihoods (1e-4), predictions and scores with and without the engine's prefix reuse;
    the items span subjects, shot counts dropped to fit a 600-token context, and one truncated question."""
    _, dataset, dev = bundled
    items = pick(dataset, {"abstract_algebra": 4, "miscellaneous": 4, "professional_law": 1})
    model, tokenizer = tiny
    shots = [s for subject in ("abstract_algebra", "miscellaneous", "professional_law") for s in dev[subject]]
    runs = {}
    for reuse in (True, False):
        engine = LocalEngine(model, tokenizer, "cpu", batch_size=batch_size, reuse_prefix=reuse)
        engine.max_length = 600
        task, run = MMLU(), Recording(engine)
        runs[reuse] = (
            task.evaluate(items, shots, Settings(protocol=protocol), run),
            run,
            dict(engine.last_plan),
            task.fit(items, shots, Settings(protocol=protocol), Runner(engine)),
        )
    (on, run_on, plan, fitted), (off, run_off, plan_off, _) = runs[True], runs[False]
    assert on == off and fitted.truncated == 1
    assert len({(i.subject, fitted.shots_used[i.id]) for i in items}) > 3  # several distinct prefixes
    if protocol == "strict":
        assert plan["groups"] >= 2 and plan["tokens_fed"] < plan_off["tokens_fed"]
        gaps = [abs(a[0] - b[0]) for a, b in zip(run_on.answers, run_off.answers)]
        assert max(gaps) < 1e-4


@pytest.mark.slow
def test_prefix_reuse_matches_full_prompts_on_smollm2(smollm2, bundled):
    _, dataset, dev = bundled
    items = pick(dataset, {"astronomy": 2, "marketing": 2})
    shots = [*dev["astronomy"], *dev["marketing"]]
    # SmolLM2 merges the prefix's final "\n\n" into one token alone, two before a question: the shared
    # prefix the engine finds in the tokens stops before it, and every question still runs on it.
    prefix = format_prefix("astronomy", dev["astronomy"][:1])
    alone = smollm2.tokenizer(prefix)["input_ids"]
    joined = smollm2.tokenizer(prefix + format_question(items[0]))["input_ids"]
    assert joined[: len(alone) - 1] == alone[:-1] and joined[: len(alone)] != alone
    for protocol in ("strict", "kick"):
        results = []
        for reuse in (True, False):
            engine = LocalEngine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=4, reuse_prefix=reuse)
            run = Recording(engine)
            results.append((MMLU().evaluate(items, shots, Settings(shots=1, protocol=protocol), run), run, engine))
        (on, run_on, engine_on), (off, run_off, _) = results
        assert on == off
        if protocol == "strict":
            assert engine_on.last_plan["groups"] == 2 and engine_on.last_plan["passes"] == 4  # one pass a question
            assert max(abs(a[0] - b[0]) for a, b in zip(run_on.answers, run_off.answers)) < 1e-4
