"""Integration tier: --kick-recover on the real SmolLM2-135M-Instruct, a few perplexity items.

A few training steps of short windows: the point is that each method runs end to end on a real model
(its peft modules, its decoder hooks, its selection pass) to a verdict with the report's fields, not how
much it regains (benchmarks/recovery.py measures that).
"""

import json

import pytest

pytestmark = pytest.mark.slow


def test_each_method_on_smollm2_runs_to_a_verdict_and_reports_its_figures(pytester, cache_dir):
    result = pytester.runpytest(
        "--kick-model",
        "smollm2-135m",
        "--kick-compressor",
        "magnitude",
        "--kick-ratio",
        "0.3",
        "--kick-tasks",
        "perplexity",
        "--kick-limit",
        "2",
        "--kick-recover",
        "prompt,idp,lora",
        "--kick-recover-steps",
        "3",
        "--kick-recover-seqlen",
        "64",
        "--kick-cache-dir",
        str(cache_dir),
        "--kick-report",
        "report.json",
        "-p",
        "no:cacheprovider",
        "-rA",
    )
    cases = {
        c.get("recover") or c["compressor"]: c for c in json.loads((pytester.path / "report.json").read_text())["cases"]
    }
    assert set(cases) == {"dense", "magnitude", "prompt", "idp", "lora"}
    hidden = 576  # SmolLM2-135M's embedding width
    sizes = {"prompt": 20 * hidden, "idp": 4 * 5 * hidden, "lora": 30 * 8 * (576 + 576 + 576 + 192)}
    for method, size in sizes.items():
        case = cases[method]
        rec = case["recovery"]
        assert case["verdict"] in ("matching", "not matching"), case
        assert case["dense"] == cases["magnitude"]["dense"] and case["n"] == 2
        assert rec["compressed"] == pytest.approx(cases["magnitude"]["compressed"], rel=1e-9)
        assert rec["extra_parameters"] == size and rec["lora_parameters"] == sizes["lora"]
        for field in ("gap_closed", "regained", "still_lost", "newly_lost", "latency_overhead", "training_seconds"):
            assert rec[field] is not None, (method, field)
        assert rec["lost"] == rec["regained"] + rec["still_lost"]
        assert len(rec["regained_interval"]) == 2 if rec["lost"] else rec["regained_interval"] is None
    assert sum(cases["idp"]["recovery"]["prompt_usage"]["evaluation"]) == 2  # one prompt chosen per item
    failed = sum(c["verdict"] == "not matching" for c in cases.values())
    result.assert_outcomes(passed=5 - failed, failed=failed)  # a not-matching recovered case fails like any other
