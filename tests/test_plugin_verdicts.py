"""The plugin as a user meets it (pytester): verdicts and the evidence, tolerances, the dense baseline cache, data
directories, and xdist giving the same verdicts."""

import json
import re

from test_plugin import TINY

POINT = ["--kick-stat", "point"]  # these judge ten or fewer items: the point rule, whose mechanics they test


def test_run_reports_verdicts_table_and_caches_dense_baseline(pytester, echo_data):
    args = [*TINY, *echo_data, "--kick-ratio", "0.5", "--kick-report", "out/report.json", "-rA"]
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=2)
    out = first.stdout.str()
    assert "dense baselines: 1 computed by this run, 0 already done" in out
    assert re.search(
        r"dense baseline: computed by this run — factoid_qa on tiny-random-llama \(\.kick/baselines/"
        r"tiny-random-llama/factoid_qa-[0-9a-f]{16}\.json\)",
        out,
    )
    assert re.search(
        r"factoid_qa\s+│\s+tiny-random-llama\s+│\s+magnitude\s+│\s+1\.000 \(n=8\)\s+│\s+"
        r"1\.000 \(\+0\.0% CI \+0\.\.\+0%\) -0/\+0 ✓",
        out,
    )
    assert "achieved sparsity 0.5000" in out
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    verdicts = {c["compressor"]: c["verdict"] for c in report["cases"]}
    assert verdicts == {"dense": "sane", "magnitude": "matching"}

    second = pytester.runpytest(*args)
    second.assert_outcomes(passed=2)
    assert "dense baselines: 0 computed by this run, 1 already done" in second.stdout.str()
    assert "dense baseline: cached, already done — factoid_qa on tiny-random-llama" in second.stdout.str()


def test_dense_at_floor_is_inconclusive_not_passed(pytester):
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "-rs")
    result.assert_outcomes(skipped=2)
    assert "factoid_qa: inconclusive: dense tiny-random-llama scores 0.000 (n=12)" in result.stdout.str()


def test_not_matching_fails_with_the_evidence(pytester):
    """A suite test handing the gate a compressed model that lost answers fails with dense, compressed,
    drop, threshold, n and the lost/gained counts."""
    pytester.makepyfile(
        test_evidence="""
        import pytest
        from pytest_kick.baseline import TaskResult

        @pytest.mark.kick_task("factoid_qa")
        def test_factoid_qa(kick_case, kick_gate):
            dense = TaskResult("factoid_qa", "accuracy", list("abcdefghij"), [1.0] * 8 + [0.0] * 2, ["x"] * 10)
            lost = TaskResult("factoid_qa", "accuracy", list("abcdefghij"), [1.0] * 5 + [0.0] * 4 + [1.0], ["y"] * 10)
            kick_gate(kick_case, dense, dense if kick_case.is_dense else lost)
        """
    )
    result = pytester.runpytest(*TINY, *POINT, "--kick-ratio", "0.5", "test_evidence.py")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "factoid_qa: magnitude@0.5 is not matching dense (tolerance 5% relative)" in out
    assert "dense 0.800 (n=10)  compressed 0.600  drop 25.0%  threshold 0.760" in out
    assert "3 answers lost, 5 kept, 1 gained" in out
    assert "Traceback" not in out and "fixtures.py" not in out  # reported at the user's test


def test_tolerance_marker_and_option(pytester):
    pytester.makepyfile(
        test_tol="""
        import pytest
        from pytest_kick.baseline import TaskResult

        @pytest.mark.kick_task("factoid_qa")
        @pytest.mark.kick_tolerance("30%")
        def test_factoid_qa(kick_case, kick_gate):
            dense = TaskResult("factoid_qa", "accuracy", list("abcd"), [1.0, 1.0, 1.0, 1.0], ["x"] * 4)
            comp = TaskResult("factoid_qa", "accuracy", list("abcd"), [1.0, 1.0, 1.0, 0.0], ["y"] * 4)
            kick_gate(kick_case, dense, dense if kick_case.is_dense else comp)
        """
    )
    pytester.runpytest(*TINY, *POINT, "--kick-ratio", "0.5", "test_tol.py").assert_outcomes(passed=2)
    strict = pytester.runpytest(
        *TINY, *POINT, "--kick-ratio", "0.5", "--kick-tolerance", "factoid_qa=10%", "test_tol.py"
    )
    strict.assert_outcomes(passed=1, failed=1)


def test_a_family_tolerance_covers_its_variants(pytester):
    """--kick-tolerance icrqa=60% applies to icrqa:open and icrqa:closed (it was accepted, then ignored)."""
    pytester.makepyfile(
        test_fam="""
        import pytest
        from pytest_kick.baseline import TaskResult

        @pytest.mark.kick_task("icrqa")
        def test_icrqa(kick_case, kick_gate):
            ids = list("abcdefghij")
            dense = TaskResult(kick_case.task, "accuracy", ids, [1.0] * 10, ["x"] * 10)
            half = TaskResult(kick_case.task, "accuracy", ids, [1.0] * 5 + [0.0] * 5, ["y"] * 10)
            kick_gate(kick_case, dense, dense if kick_case.is_dense else half)
        """
    )
    args = [
        "--kick-model",
        "tiny-random-llama",
        "--kick-tasks",
        "icrqa",
        "--kick-ratio",
        "0.5",
        "-p",
        "no:cacheprovider",
        *POINT,
        "test_fam.py",
    ]
    pytester.runpytest(*args).assert_outcomes(passed=2, failed=2)
    pytester.runpytest(*args, "--kick-tolerance", "icrqa=60%").assert_outcomes(passed=4)
    pytester.runpytest(*args, "--kick-tolerance", "icrqa=60%,icrqa:open=5%").assert_outcomes(passed=3, failed=1)


def test_corrupt_baseline_cache_is_a_clear_error_and_is_kept(pytester, echo_data):
    args = [*TINY, *echo_data, "--kick-ratio", "0.5"]
    pytester.runpytest(*args).assert_outcomes(passed=2)
    [cached] = (pytester.path / ".kick" / "baselines" / "tiny-random-llama").glob("factoid_qa-*.json")
    cached.write_text('{"format": 1, "key": ')
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert f"corrupt dense-baseline cache {cached}" in out
    assert "Traceback" not in out
    assert cached.read_text() == '{"format": 1, "key": '


def test_a_data_dir_without_a_tasks_data_falls_back_to_the_bundled_sample_and_says_so(pytester):
    (pytester.path / "data").mkdir()
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "--kick-data-dir", "data", "-W", "always")
    out = result.stdout.str()
    assert "--kick-data-dir" in out and "holds no factoid_qa data, so factoid_qa uses the bundled sample" in out
    assert "FreebaseQA-eval.json" in out  # how to give your own copy
    assert "factoid_qa: bundled:freebaseqa" in out


def test_a_malformed_local_data_file_is_a_clear_error(pytester):
    (pytester.path / "data" / "freebaseqa").mkdir(parents=True)
    (pytester.path / "data" / "freebaseqa" / "broken.jsonl").write_text(
        '{"id": "a", "question": "q", "answers": ["x"]}\n{oops\n'
    )
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "--kick-data-dir", "data")
    result.assert_outcomes(failed=2)
    assert "broken.jsonl:2: not valid JSON" in result.stdout.str()


def test_local_data_dir_in_the_official_format(pytester, echo_data):
    result = pytester.runpytest(*TINY, *echo_data, "--kick-ratio", "0.5", "--kick-report", "r.json")
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "r.json").read_text())
    assert {c["n"] for c in report["cases"]} == {8}
    assert all(c["data_source"].startswith("local:") for c in report["cases"])


def test_xdist_gives_the_same_verdicts(pytester, echo_data):
    args = [*TINY, *echo_data, "--kick-ratio", "0.2,0.5", "-rA"]
    serial = pytester.runpytest_subprocess(*args, "--kick-cache-dir", "serial-cache")
    parallel = pytester.runpytest_subprocess(*args, "-n", "2", "--kick-report", "parallel.json")
    serial.assert_outcomes(passed=3)
    parallel.assert_outcomes(passed=3)

    def verdicts(result):
        return sorted(re.findall(r"^PASSED .*?(test_factoid_qa\[[^\]]+\])", result.stdout.str(), re.M))

    assert verdicts(serial) == verdicts(parallel) and len(verdicts(serial)) == 3
    # the dense baseline is computed once across workers; every other item reads it
    statuses = sorted(c["baseline"] for c in json.loads((pytester.path / "parallel.json").read_text())["cases"])
    assert statuses == ["cached", "cached", "computed"]
    assert len(list((pytester.path / ".kick" / "baselines" / "tiny-random-llama").glob("*.json"))) == 1
    assert "pytest-kick" in parallel.stdout.str()  # the summary table is printed by the controller
