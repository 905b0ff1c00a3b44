"""Judge errors as a case sees them (left out, or no verdict), and the judge's account in the reports."""

import pytest

from pytest_kick import report, report_judge, report_markdown
from pytest_kick.judge.errors import JudgeErrorsExceeded, kept_items
from pytest_kick.record import CaseRecord
from pytest_kick.tasks.scorers import mean_figures

NAN = float("nan")


def test_items_with_a_judge_error_in_either_run_are_left_out_and_counted():
    screen = kept_items([7.0, NAN, 6.0, 5.0], [6.5, 6.0, NAN, 5.0])
    assert screen.kept == (0, 3)
    assert (screen.items, screen.dense_errors, screen.compressed_errors, screen.left_out) == (4, 1, 1, 2)
    assert screen.exceeded
    assert screen.note() == (
        "judge errors: 2 of 4 items left out of the pairing (dense 1, compressed 1; at most 5% allowed); "
        "the verdict scores the compressed ones at the task's floor"
    )
    with pytest.raises(
        JudgeErrorsExceeded,
        match=r"^case x: the judge failed on 2 of 4 items \(50%, more than 5%\): "
        r"no verdict; e.g. HTTP 500 \(5 attempts\)$",
    ):
        screen.check("case x", "HTTP 500 (5 attempts)")


def test_up_to_five_percent_keeps_the_verdict():
    dense = [7.0] * 19 + [NAN]
    assert not kept_items(dense, [7.0] * 20).exceeded  # 1 of 20: 5%
    assert kept_items(dense, [NAN] + [7.0] * 19).exceeded  # 2 of 20
    assert kept_items([7.0] * 20, None).left_out == 0 and kept_items([7.0] * 20, None).note() == ""


def test_figure_means_skip_the_items_the_judge_failed_on():
    class Scorer:
        def figures(self, item, replies):
            return {"judge_error": float(item == "b"), "judge_coherence": NAN if item == "b" else float(len(item))}

    found = mean_figures(Scorer(), ["a", "b", "ccc"], [("x",)] * 3)
    assert found == {"judge_error": pytest.approx(1 / 3), "judge_coherence": 2.0}


def usage(**counts):
    found = dict.fromkeys(report_judge.JUDGE_COUNTS, 0)
    found.update(judge="openai:gpt-4", errors=[])
    found.update(counts)
    return found


def test_the_summary_adds_up_what_every_item_spent():
    records = [
        {
            "task": "instruction:vicuna",
            "model": "m",
            "compressor": "dense",
            "ratio": None,
            "judge": usage(
                requests=8,
                retries=2,
                tokens_in=800,
                tokens_out=80,
                items=4,
                order_pairs=4,
                asks=16,
                unreadable_first=4,
                order_disagreements=1,
            ),
            "judge_errors": {"items": 4, "dense": 0, "compressed": 0, "left_out": 0, "exceeded": False},
        },
        {
            "task": "instruction:vicuna",
            "model": "m",
            "compressor": "magnitude",
            "ratio": "0.5",
            "judge": usage(
                requests=9,
                cache_hits=3,
                items=4,
                item_errors=1,
                failed_asks=1,
                order_pairs=4,
                errors=["HTTP 500 (5 attempts)"],
            ),
            "judge_errors": {"items": 4, "dense": 0, "compressed": 1, "left_out": 1, "exceeded": True},
        },
        {"task": "mmlu", "model": "m", "compressor": "dense", "ratio": None},
    ]
    records = [CaseRecord(**r) for r in records]
    found = report_judge.judge_summary(records)
    assert (found["requests"], found["retries"], found["cache_hits"], found["items"], found["item_errors"]) == (
        17,
        2,
        3,
        8,
        1,
    )
    assert found["order_disagreement_rate"] == 1 / 8 and found["cases_without_verdict"] == 1
    lines = report_judge.judge_lines(records)
    assert lines[0] == (
        "judge openai:gpt-4: 17 requests (2 retries), 3 cache hits, tokens in/out 800/80, 1 judge "
        "errors in 8 judged items (0 re-asks), 75% of 16 judgments read at the first ask, orders "
        "disagree on 12% of 8 pairwise items"
    )
    assert lines[1] == (
        "judge errors: instruction:vicuna m magnitude@0.5: 1 of 4 items no verdict (case error) (dense 0, compressed 1)"
    )
    assert lines[2] == "judge error e.g.: HTTP 500 (5 attempts)"
    assert report_judge.judge_lines(records[2:]) == [] and report_judge.judge_summary(records[2:]) is None
    assert "orders disagree" in report_markdown.markdown(records, {})


def test_a_compressed_case_ended_by_its_dense_run_says_compressed_was_not_evaluated():
    # a compressed case screens dense first; too many dense judge errors end it before the compressed run
    screen = kept_items([NAN, NAN, 7.0], None)
    assert screen.record()["compressed"] is None and screen.exceeded
    assert screen.note() == "judge errors: 2 of 3 items left out of the pairing (dense 2; at most 5% allowed)"
    records = [
        CaseRecord(
            "summarization:small",
            "m",
            compressor,
            ratio,
            judge=usage(items=3, item_errors=2),
            judge_errors=screen.record(),
        )
        for compressor, ratio in (("dense", None), ("magnitude", "0.3"))
    ]
    assert report_judge.judge_lines(records)[1:3] == [
        "judge errors: summarization:small m dense: 2 of 3 items no verdict (case error) (dense 2)",
        "judge errors: summarization:small m magnitude@0.3: 2 of 3 items no verdict (case error) "
        "(dense 2, compressed not evaluated)",
    ]


def test_a_judge_error_case_reads_as_such_in_the_table():
    record = CaseRecord("t", "m", "magnitude", "0.5", verdict="judge-error")
    assert "judge-error" in report.render([record])
