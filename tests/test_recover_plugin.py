"""--kick-recover as a user meets it: recovered cases as their own items, trained once and cached, gated
against the same dense baseline, with the model exactly as compressed (then dense) afterwards.

Plugin mechanics on tiny-random-llama (a few training steps of short windows); real model behaviour is in
test_recover_integration.py.
"""

import json
import re

import pytest

TINY = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-tasks",
    "perplexity",
    "--kick-limit",
    "4",
    "--kick-ratio",
    "0.5",
    "-p",
    "no:cacheprovider",
]
FAST = ["--kick-recover-steps", "2", "--kick-recover-seqlen", "32"]


def ids_of(result, test="test_perplexity"):
    return re.findall(rf"{test}\[([^\]]+)\]", result.stdout.str())


def test_default_adds_no_item_and_keeps_ids(pytester):
    plain = ids_of(pytester.runpytest(*TINY, "--collect-only", "-q"))
    none = ids_of(pytester.runpytest(*TINY, "--kick-recover", "none", "--collect-only", "-q"))
    assert plain == none == ["tiny-random-llama-dense", "tiny-random-llama-magnitude-0.5"]


def test_each_method_is_its_own_item_after_its_compressed_case(pytester):
    result = pytester.runpytest(
        *TINY, "--kick-ratio", "0.5,0.25", "--kick-recover", "lora,none,prompt", "--collect-only", "-q"
    )
    assert ids_of(result) == [
        "tiny-random-llama-dense",
        "tiny-random-llama-magnitude-0.5",
        "tiny-random-llama-magnitude-0.5+lora",
        "tiny-random-llama-magnitude-0.5+prompt",
        "tiny-random-llama-magnitude-0.25",
        "tiny-random-llama-magnitude-0.25+lora",
        "tiny-random-llama-magnitude-0.25+prompt",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kick-recover", "soft"], "--kick-recover: unknown method 'soft'; choose from none, prompt, idp, lora"),
        (
            ["--kick-recover-steps", "5"],
            "--kick-recover-steps sets up recovery: add --kick-recover prompt, idp or lora",
        ),
        (["--kick-recover", "lora", "--kick-recover-steps", "0"], "--kick-recover-steps: must be at least 1 (got 0)"),
        (["--kick-recover", "lora", "--kick-recover-lr", "-1"], "--kick-recover-lr: must be more than 0"),
        (["--kick-recover", "lora", "--kick-recover-size", "lora.rank=0"], "lora.rank must be at least 1 (got 0)"),
        (
            ["--kick-recover", "lora", "--kick-recover-size", "lora.depth=2"],
            "--kick-recover-size: cannot read 'lora.depth=2'",
        ),
        (["--kick-recover", "lora", "--kick-recover-data", "missing"], "--kick-recover-data: "),
    ],
)
def test_bad_recovery_options_are_usage_errors(pytester, args, message):
    result = pytester.runpytest(*TINY, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_without_peft_recovery_is_a_usage_error(pytester, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else find_spec(name, *a))
    result = pytester.runpytest(*TINY, "--kick-recover", "lora")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--kick-recover needs peft: pip install 'pytest-kick[recover]'" in result.stderr.str()


def test_recovered_cases_report_their_figures_and_a_rerun_does_not_retrain(pytester):
    args = [
        *TINY,
        *FAST,
        "--kick-recover",
        "prompt,idp,lora",
        "--kick-report",
        "report.json",
        "--kick-markdown",
        "summary.md",
    ]
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=5)
    assert first.stderr.str().count("recovery: training") == 3
    cases = {
        c.get("recover") or c["compressor"]: c for c in json.loads((pytester.path / "report.json").read_text())["cases"]
    }
    compressed = cases["magnitude"]
    for method in ("prompt", "idp", "lora"):
        case = cases[method]
        rec = case["recovery"]
        assert case["verdict"] in ("matching", "not matching")
        assert case["compressed"] == pytest.approx(rec["recovered"], rel=1e-12)  # the gated score is the recovered one
        assert rec["compressed"] == pytest.approx(compressed["compressed"], rel=1e-12)
        assert case["dense"] == compressed["dense"]
        gap = (rec["recovered"] - rec["compressed"]) / (case["dense"] - rec["compressed"])
        assert rec["gap_closed"] == pytest.approx(gap)
        assert rec["lost"] == compressed["lost"] == rec["regained"] + rec["still_lost"]
        assert rec["extra_parameters"] > 0 and rec["ratio_to_lora"] == rec["extra_parameters"] / rec["lora_parameters"]
        assert rec["latency_overhead"] == pytest.approx(
            rec["seconds_per_item"]["recovered"] / rec["seconds_per_item"]["compressed"] - 1
        )
        assert rec["training_seconds"] > 0 and rec["cached"] is False
    assert cases["lora"]["recovery"]["ratio_to_lora"] == 1.0
    assert cases["prompt"]["recovery"]["extra_parameters"] == cases["idp"]["recovery"]["extra_parameters"]
    out = first.stdout.str()
    assert re.search(r"magnitude\+lora\s+│", out) and "recovery perplexity tiny-random-llama magnitude@0.5+idp" in out
    usage = cases["idp"]["recovery"]["prompt_usage"]["evaluation"]  # one choice per model input (window), >= 1 per item
    assert sum(usage) >= 4 and f"IDP prompt choices {'/'.join(map(str, usage))} (evaluation)" in out
    assert "### Recovery" in (pytester.path / "summary.md").read_text()

    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=5)
    assert "recovery: training" not in again.stderr.str()
    assert again.stderr.str().count("loaded from the cache") == 3
    rerun = {c.get("recover"): c for c in json.loads((pytester.path / "report.json").read_text())["cases"]}
    for method in ("prompt", "idp", "lora"):
        assert rerun[method]["recovery"]["cached"] is True
        assert rerun[method]["compressed"] == cases[method]["compressed"]  # the same parameters, the same score


def test_after_a_recovered_case_the_model_is_the_compressed_model_bit_for_bit(tmp_path):
    import torch

    from pytest_kick import config
    from pytest_kick.runtime import KickCase, Runtime

    values = {opt.name: None for opt in config.OPTIONS}
    values.update(
        {
            "model": "tiny-random-llama",
            "tasks": "perplexity",
            "limit": "3",
            "ratio": "0.5",
            "recover": "prompt,idp,lora",
            "recover-steps": "2",
            "recover-seqlen": "32",
            "cache-dir": str(tmp_path),
        }
    )
    runtime = Runtime(config.build(values, tmp_path))

    def state():
        return {k: v.clone() for k, v in runtime.model("tiny-random-llama").model.state_dict().items()}

    runtime.evaluate(KickCase("perplexity", "tiny-random-llama"))
    dense = state()
    plain = runtime.evaluate(KickCase("perplexity", "tiny-random-llama", "magnitude", "0.5"))
    compressed = state()
    for method in ("prompt", "idp", "lora"):
        recovered = runtime.evaluate(KickCase("perplexity", "tiny-random-llama", "magnitude", "0.5", method))
        assert recovered.scores != plain.scores  # the recovery was on during the evaluation
        after = state()
        assert after.keys() == compressed.keys()
        assert all(torch.equal(after[k], compressed[k]) for k in compressed), method
    again = runtime.evaluate(KickCase("perplexity", "tiny-random-llama", "magnitude", "0.5"))
    assert again.scores == plain.scores
    runtime.use_variant("tiny-random-llama", None, None)
    assert all(torch.equal(state()[k], dense[k]) for k in dense)


def test_soft_prompts_on_few_shot_multiple_choice_where_the_engine_packs_rows(tmp_path, monkeypatch):
    """MMLU questions of one subject share their 5 shots; their short suffixes are packed several to a row behind
    a 4-D mask, which a soft prompt cannot go in front of. While a soft prompt is on, every sequence gets its own
    row (LoRA keeps packed rows; the engine packs again afterwards)."""
    from pytest_kick import config
    from pytest_kick.runtime import KickCase, Runtime

    folder = tmp_path / "data" / "mmlu"
    folder.mkdir(parents=True)

    def rows(split, n, words):
        return "".join(
            json.dumps(
                {
                    "id": f"{split}-{k}",
                    "dataset": "mmlu",
                    "split": split,
                    "subject": "marketing",
                    "question": f"{words} {k}?",
                    "choices": ["a", "b", "c", "d"],
                    "answer": "A",
                    "answer_index": 0,
                }
            )
            + "\n"
            for k in range(n)
        )

    (folder / "mmlu_dev.jsonl").write_text(rows("dev", 5, "a longer worked example of a question " * 3))
    (folder / "mmlu_test.jsonl").write_text(rows("test", 6, "Which"))  # short: several fit in one packed row
    values = {opt.name: None for opt in config.OPTIONS}
    values.update(
        {
            "model": "tiny-random-llama",
            "tasks": "mmlu",
            "ratio": "0.5",
            "data-dir": str(tmp_path / "data"),
            "recover": "prompt,idp,lora",
            "recover-steps": "1",
            "recover-seqlen": "32",
            "cache-dir": str(tmp_path / "cache"),
        }
    )
    from pytest_kick.engines import passes

    packed_rows = []  # sequences per packed row, of the evaluation under way
    run_packed = passes.packed_states
    monkeypatch.setattr(
        passes,
        "packed_states",
        lambda model, segments, *a, **k: packed_rows.append(len(segments)) or run_packed(model, segments, *a, **k),
    )
    runtime = Runtime(config.build(values, tmp_path))
    runtime.evaluate(KickCase("mmlu", "tiny-random-llama", "magnitude", "0.5"))
    engine = runtime.engine("tiny-random-llama", True)
    assert engine.last_plan["groups"] >= 1 and max(packed_rows) > 1  # the shared shots, then packed suffixes
    model = runtime.model("tiny-random-llama").model
    for method, packs in (("prompt", False), ("idp", False), ("lora", True)):
        packed_rows.clear()
        recovered = runtime.evaluate(KickCase("mmlu", "tiny-random-llama", "magnitude", "0.5", method))
        assert len(recovered.scores) == 6
        assert (max(packed_rows, default=0) > 1) == packs, (method, packed_rows)  # a soft prompt: a row each
        assert passes.packable(model) and engine.reuse_prefix  # as they were
