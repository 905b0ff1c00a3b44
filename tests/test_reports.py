"""What a run leaves behind for people: JSON, Markdown, JUnit properties; and the A/A check of the gate."""

import json
import random
import xml.etree.ElementTree as ET

import kick_args

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.gate import Tolerance, judge
from pytest_kick.record import Verdict
from pytest_kick.requests import GenerationRequest

NOT_MATCHING = Verdict.NOT_MATCHING

TINY = kick_args.FACTOID_AT_HALF


def test_json_markdown_and_junit_reports(pytester, echo_data):
    result = pytester.runpytest(
        *TINY,
        *echo_data,
        "--kick-report",
        "out/r.json",
        "--kick-markdown",
        "out/summary.md",
        "--junitxml",
        "out/junit.xml",
    )
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "out" / "r.json").read_text())
    assert report["meta"]["tasks"]["factoid_qa"]["metric"] == "accuracy"
    assert report["meta"]["environment"]["torch"]
    assert report["meta"]["config"]["stat"] == "point"
    [case] = [c for c in report["cases"] if c["compressor"] == "magnitude"]
    assert case["drop_low"] <= case["drop"] <= case["drop_high"] and case["verdict"] == "matching"

    markdown = (pytester.path / "out" / "summary.md").read_text()
    assert "| task | model | compressor | ratio | dense | compressed | drop | 95% CI of drop |" in markdown
    assert "| factoid_qa | tiny-random-llama | magnitude | 0.5 | 1.000 (n=8) | 1.000 | 0.0% |" in markdown
    assert "✅ matching" in markdown and "protocol: kick" in markdown

    cases = ET.parse(pytester.path / "out" / "junit.xml").getroot().iter("testcase")
    props = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    magnitude = props["test_factoid_qa[tiny-random-llama-magnitude-0.5]"]
    assert magnitude["kick_verdict"] == "matching"
    assert float(magnitude["kick_dense"]) == 1.0 and float(magnitude["kick_compressed"]) == 1.0
    assert {"kick_drop", "kick_drop_low", "kick_drop_high", "kick_lost", "kick_gained"} <= set(magnitude)


def test_a_a_dense_against_itself_never_fails(tiny):
    """Dense vs dense, answered with another batch size and item order, over 20 seeds: never "not matching"."""
    model, tokenizer = tiny
    prompts = [f"Question {i}: name something {'blue' if i % 3 else 'red'}?" for i in range(48)]
    requests = [GenerationRequest(p, 4) for p in prompts]

    def scores(outputs):  # a deterministic 0/1 score with a mean near 0.5
        return [float(bool(o) and ord(o[0]) % 2 == 0) for o in outputs]

    reference = scores(Engine(model, tokenizer, "cpu", 16).generate(requests))
    assert 0 < sum(reference) < len(reference)
    for seed in range(20):
        rng = random.Random(seed)
        order = rng.sample(range(len(prompts)), len(prompts))
        outputs = Engine(model, tokenizer, "cpu", rng.randint(1, 12)).generate([requests[i] for i in order])
        again = [0.0] * len(prompts)
        for position, i in enumerate(order):
            again[i] = scores([outputs[position]])[0]
        for stat in ("point", "ci"):
            v = judge(
                task="aa",
                label=f"dense@seed{seed}",
                dense=reference,
                compressed=again,
                tolerance=Tolerance(0.05),
                stat=stat,
                seed=seed,
            )
            assert v.status != NOT_MATCHING, v.message
            assert (v.lost, v.gained) == (0, 0)


def test_plot_draws_score_against_sparsity(pytester, echo_data):
    result = pytester.runpytest(*TINY, *echo_data, "--kick-ratio", "0.2,0.5", "--kick-plot", "plots")
    result.assert_outcomes(passed=3)
    png = pytester.path / "plots" / "tiny-random-llama-factoid_qa.png"
    assert f"plot: {png}" in result.stdout.str()
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
