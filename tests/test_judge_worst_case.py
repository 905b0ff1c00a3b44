"""A compressed item the judge failed on is scored at the task's floor for the verdict (the worst case); the
verdict with the item left out is computed too, and when the two differ the case is inconclusive."""

import math

from pytest_kick import gate
from pytest_kick.judge.errors import kept_items
from pytest_kick.judge.worst_case import decide
from pytest_kick.record import Verdict

NAN = math.nan


def judged(dense, compressed):
    """The gate the runtime hands over: 5 % relative, point estimate, judge ratings 1 to 10."""
    return gate.judge(
        task="instruction", label="magnitude-0.5", dense=dense, compressed=compressed,
        tolerance=gate.Tolerance(0.05), floor=1.0, metric="judge",
    )  # fmt: skip


def test_without_compressed_judge_errors_the_gate_is_asked_once():
    calls = []
    decision = decide([8.0, 7.0], [8.0, 7.0], 1.0, lambda d, c: calls.append((d, c)) or judged(d, c))
    assert calls == [([8.0, 7.0], [8.0, 7.0])] and decision.left_out is None and decision.items == 0
    assert decision.result.status == Verdict.MATCHING


def test_the_floor_is_the_verdict_when_both_readings_agree():
    dense = [8.0] * 20
    compressed = [8.0] * 19 + [NAN]  # at the floor: (19 x 8 + 1) / 20 = 7.65, a 4.4 % drop: still matching
    seen = []
    decision = decide(dense, compressed, 1.0, lambda d, c: seen.append(c) or judged(d, c))
    assert seen == [[8.0] * 19 + [1.0], [8.0] * 19]  # the worst case, then left out
    assert decision.result is decision.worst and decision.result.status == Verdict.MATCHING
    assert decision.result.compressed == 7.65 and decision.items == 1
    assert decision.record() == {
        "compressed_at_floor": 1,
        "verdict_at_floor": "matching",
        "verdict_left_out": "matching",
    }


def test_readings_that_differ_make_the_case_inconclusive_saying_why():
    dense = [8.0] * 20
    compressed = [8.0] * 18 + [NAN, NAN]  # left out: no drop; at the floor: 7.3, an 8.75 % drop
    decision = decide(dense, compressed, 1.0, judged)
    assert (decision.worst.status, decision.left_out.status) == (Verdict.NOT_MATCHING, Verdict.MATCHING)
    assert decision.result.status == Verdict.INCONCLUSIVE
    assert decision.result.message.splitlines()[0] == (
        "inconclusive: the verdict hangs on 2 compressed items the judge failed on: scored at the floor (1) it "
        "is not matching, left out it is matching"
    )
    assert decision.result.drop == decision.worst.drop  # the evidence shown is the worst case's


def test_leaving_failed_items_out_no_longer_favours_the_compressed_model():
    """The judge refuses to rate the compressed model's broken answers: left out, compressed looks perfect."""
    dense = [7.0] * 10
    compressed = [7.0] * 5 + [NAN] * 5
    assert judged(dense[:5], compressed[:5]).status == Verdict.MATCHING  # what dropping the items said
    assert decide(dense, compressed, 1.0, judged).result.status == Verdict.INCONCLUSIVE


def test_the_screen_hands_over_every_dense_judged_item():
    screen = kept_items([8.0, NAN, 7.0, 6.0], [NAN, 5.0, 7.0, NAN])
    assert screen.kept == (2,) and screen.left_out == 3
    dense, compressed = screen.worst  # the dense judge error has no baseline: left out of both
    assert dense == [8.0, 7.0, 6.0] and compressed[1] == 7.0 and all(map(math.isnan, compressed[::2]))
    assert kept_items([8.0, NAN], [8.0, 5.0]).worst is None  # only dense failed: nothing to score at the floor
    screen.decision = {"compressed_at_floor": 2}
    assert screen.record()["compressed_at_floor"] == 2


def test_a_judge_error_case_is_an_error_in_the_json_report(tmp_path):
    import json

    from pytest_kick.record import CaseRecord
    from pytest_kick.report import write_json

    records = [
        CaseRecord("instruction", "m", "magnitude", "0.5", verdict=Verdict.JUDGE_ERROR, outcome="failed"),
        CaseRecord("instruction", "m", "rtn", "w8", verdict=Verdict.NOT_MATCHING, outcome="failed"),
    ]
    write_json(records, tmp_path / "report.json", {})
    cases = json.loads((tmp_path / "report.json").read_text())["cases"]
    assert [c["outcome"] for c in cases] == ["error", "failed"]


def test_the_runtime_draws_the_verdict_from_both_readings():
    """Runtime.verdict, handed the case's judge screen, lets decide() score compressed judge errors at the floor."""
    from types import SimpleNamespace

    from pytest_kick.runtime import Runtime

    task = SimpleNamespace(floor=1.0, higher_is_better=True, metric="judge-m", figure=None)
    runtime = SimpleNamespace(
        task=lambda name: task,
        config=SimpleNamespace(stat="point", seed=0, alpha=0.05, family="case"),
        family_size=1,
    )
    runtime._gate = lambda *args: Runtime._gate(runtime, *args)
    case = SimpleNamespace(task="instruction:vicuna", label="magnitude-0.5")
    dense, compressed = [8.0] * 20, [8.0] * 18 + [NAN, NAN]
    screen = kept_items(dense, compressed)
    kept = SimpleNamespace(scores=[dense[k] for k in screen.kept])
    result = Runtime.verdict(runtime, case, kept, kept, gate.Tolerance(0.05), 1.0, screen=screen)
    assert result.status == Verdict.INCONCLUSIVE and result.n == 20
    assert screen.record()["verdict_at_floor"] == "not matching" and screen.record()["verdict_left_out"] == "matching"
    unscreened = Runtime.verdict(runtime, case, kept, kept, gate.Tolerance(0.05), 1.0)
    assert unscreened.status == Verdict.MATCHING and unscreened.n == 18  # what the left-out pairing alone said
