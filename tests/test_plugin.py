"""The plugin as a user meets it: real pytest sessions (pytester) with real command lines.

These run the bundled suite on ``tiny-random-llama`` (builds in milliseconds): plugin mechanics, not
model quality. Model behaviour is tested on smollm2-135m in test_integration_smollm2.py.
"""

import json
import re

import pytest

TINY = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "12",
    "--kick-tasks",
    "factoid_qa",
    "-p",
    "no:cacheprovider",
]


def test_without_options_the_plugin_does_nothing(pytester):
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            heavy = [m for m in ("torch", "transformers") if m in sys.modules]
            print("HEAVY-IMPORTS:", heavy)
        """
    )
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "HEAVY-IMPORTS: []" in result.stdout.str()
    assert "kick" not in result.stdout.str().replace("plugins:", "").split("HEAVY")[0].lower().replace("kick-0.1.0", "")
    assert not (pytester.path / ".kick").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kick-model", "no-such-model"], "--kick-model: unknown model 'no-such-model'"),
        (["--kick-model", "tiny-random-llama", "--kick-ratio", "1.5"], "--kick-ratio: 1.5 is outside [0, 1)"),
        (
            ["--kick-model", "tiny-random-llama", "--kick-ratio", "abc"],
            "--kick-ratio: 'abc' is not a compression ratio",
        ),
        (["--kick-model", "tiny-random-llama", "--kick-tasks", "nope"], "--kick-tasks: unknown task 'nope'"),
        (["--kick-model", "tiny-random-llama", "--kick-compressor", "nope"], "unknown compressor 'nope'"),
        (["--kick-model", "tiny-random-llama", "--kick-limit", "0"], "--kick-limit: must be at least 1 (got 0)"),
        (["--kick-ratio", "0.5"], "--kick-ratio needs --kick-model"),
    ],
)
def test_bad_options_are_usage_errors_without_traceback(pytester, args, message):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err
    assert "Traceback" not in err and "Traceback" not in result.stdout.str()


def test_ids_one_item_per_case_dense_included(pytester):
    result = pytester.runpytest(
        *TINY, "--kick-compressor", "magnitude", "--kick-ratio", "0.5,0.25", "--collect-only", "-q"
    )
    ids = re.findall(r"test_factoid_qa\[([^\]]+)\]", result.stdout.str())
    assert ids == ["tiny-random-llama-dense", "tiny-random-llama-magnitude-0.5", "tiny-random-llama-magnitude-0.25"]


def test_ini_keys_work_like_options(pytester):
    pytester.makeini(
        """
        [pytest]
        kick_model = tiny-random-llama
        kick_ratio = 0.4
        kick_limit = 5
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    ids = re.findall(r"test_factoid_qa\[([^\]]+)\]", result.stdout.str())
    assert ids == ["tiny-random-llama-dense", "tiny-random-llama-magnitude-0.4"]


def test_own_kick_tests_and_regular_tests_run_side_by_side(pytester):
    pytester.makepyfile(
        test_mine="""
        import pytest

        def test_regular():
            assert 1 + 1 == 2

        @pytest.mark.kick_task("factoid_qa")
        def test_factoid_qa(kick_case):
            assert kick_case.task == "factoid_qa"
        """
    )
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "test_mine.py", "-q")
    result.assert_outcomes(passed=3)


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
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "test_evidence.py")
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
    pytester.runpytest(*TINY, "--kick-ratio", "0.5", "test_tol.py").assert_outcomes(passed=2)
    strict = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "--kick-tolerance", "factoid_qa=10%", "test_tol.py")
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


def test_hub_alias_offline_says_how_to_point_at_a_local_copy(pytester, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(pytester.path / "hf-home"))

    result = pytester.runpytest("--kick-model", "vicuna-7b", "--kick-ratio", "0.5", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # every item would fail the same way: said once, session stopped
    result.assert_outcomes()
    out = result.stdout.str()
    assert out.count("model vicuna-7b (lmsys/vicuna-7b-v1.3) is not in the local Hugging Face cache") == 1
    assert "pass --kick-model /path/to/its/directory" in out
    assert "Traceback" not in out and "During handling" not in out


def test_ini_kick_keys_without_a_model_leave_the_plugin_off(pytester):
    pytester.makeini("[pytest]\nkick_stat = ci\nkick_limit = 5\n")
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "pytest-kick" not in result.stdout.str()


def test_two_models_with_one_short_name_are_refused(pytester):
    for folder in ("a", "b"):
        (pytester.path / folder / "llama").mkdir(parents=True)
        for part in ("config.json", "model.safetensors", "tokenizer.json"):  # what a model directory holds
            (pytester.path / folder / "llama" / part).write_text("{}")
    result = pytester.runpytest("--kick-model", "a/llama,b/llama")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "would both be called 'llama'" in result.stderr.str()


def test_a_case_failing_before_its_verdict_is_in_the_reports(pytester):
    (pytester.path / "data" / "freebaseqa").mkdir(parents=True)
    (pytester.path / "data" / "freebaseqa" / "broken.jsonl").write_text("{oops\n")
    result = pytester.runpytest(
        *TINY, "--kick-ratio", "0.5", "--kick-data-dir", "data", "--kick-report", "r.json", "--kick-markdown", "r.md"
    )
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "broken.jsonl:1: not valid JSON" in out and "Traceback" not in out
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    assert sorted(c["compressor"] for c in cases) == ["dense", "magnitude"]
    assert all(c["outcome"] == "failed" for c in cases)
    assert "| factoid_qa | tiny-random-llama | magnitude | 0.5 |" in (pytester.path / "r.md").read_text()
