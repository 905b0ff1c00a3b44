"""The end-of-session lines about baselines and dense-first savings, from the records items leave."""

from pytest_kick.record import CaseRecord
from pytest_kick.report import baseline_lines, saved_lines


def rec(compressor, ratio=None, **extra):
    return CaseRecord(**{"task": "mmlu", "model": "m", "compressor": compressor, "ratio": ratio, **extra})


def test_a_baseline_computed_by_a_compressed_item_of_this_run_counts_as_computed():
    """Under xdist the compressed item on another worker may compute the baseline that the dense item then reads."""
    records = [
        rec("dense", baseline="cached", baseline_path="b/mmlu.json"),
        rec("magnitude", "0.5", baseline="computed", baseline_path="b/mmlu.json"),
        rec("dense", baseline="cached", baseline_path="b/fq.json", task="factoid_qa"),
    ]
    assert baseline_lines(records) == [
        "dense baselines: 1 computed by this run, 1 already done",
        "dense baseline: computed by this run — mmlu on m (b/mmlu.json)",
        "dense baseline: cached, already done — factoid_qa on m (b/fq.json)",
    ]


def test_baseline_files_written_or_read():
    assert (
        baseline_lines([rec("dense", baseline="written"), rec("wanda", "0.5", baseline="file")])[0]
        == "dense baselines: 1 computed by this run, 0 already done"
    )
    assert baseline_lines([rec("dense", baseline="file")])[1] == "dense baseline: file, already done — mmlu on m"
    assert baseline_lines([rec("dense")]) == []


def test_saved_work_counts_cases_and_variants_never_built():
    records = [
        rec("magnitude", "0.5", saved=True),
        rec("magnitude", "0.3", saved=True),
        rec("magnitude", "0.5", compression={"sparsity": 0.5}, task="factoid_qa"),
    ]
    assert saved_lines(records) == [
        "dense first: 2 compressed cases were neither compressed nor evaluated, as dense is inconclusive "
        "(mmlu on m); 1 compressed variant never built"
    ]
    assert saved_lines([rec("magnitude", "0.5")]) == []
