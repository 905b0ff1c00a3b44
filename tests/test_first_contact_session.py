"""What a new user meets first, in the session: what dooms every item is said once, which baselines this run
computed, only the cases asked for are collected, dense first, and skips reported at the user's test."""

import re
import subprocess
import sys

import first_contact_helpers
import pytest
from first_contact_helpers import TINY

filled_cache = first_contact_helpers.filled_cache  # the fixture


def test_no_cuda_device_is_one_usage_error_before_collection(pytester, filled_cache, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no visible GPU, whatever this machine has
    result = pytester.runpytest(*TINY, "--kick-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("pytest-kick: --kick-device cuda: no CUDA device is visible; use --kick-device cpu") == 1
    assert "collected" not in result.stdout.str()


def test_no_cuda_device_from_the_ini_file_names_the_ini_key(pytester, filled_cache, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pytester.makeini("[pytest]\nkick_device = cuda:1\n")
    result = pytester.runpytest(*TINY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        f"kick_device = cuda:1 in {pytester.path / 'tox.ini'}: this machine has 0 visible CUDA device(s)"
        in result.stderr.str()
    )


def test_mps_on_a_machine_without_it_is_one_usage_error(pytester, filled_cache):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    result = pytester.runpytest(*TINY, "--kick-device", "mps")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--kick-device mps: MPS is not available on this machine; use --kick-device cpu" in result.stderr.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_unloadable_model_stops_the_session_with_one_message(pytester, filled_cache, xdist):
    # every file a model directory must hold is there (so the option check passes), but none can be read
    model = pytester.path / "empty-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"not a safetensors file")
    (model / "tokenizer.json").write_text("{}")
    run = pytester.runpytest_subprocess if xdist else pytester.runpytest
    result = run(
        "--kick-model",
        "empty-model",
        "--kick-tasks",
        "factoid_qa,mmlu",
        "--kick-ratio",
        "0.3,0.5",
        "--kick-limit",
        "4",
        "-p",
        "no:cacheprovider",
        "--kick-cache-dir",
        str(filled_cache),
        *xdist,
    )
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert len(re.findall(r"pytest-kick: .*empty-model", out)) == 1, out  # said once, not per item
    assert "failed" not in out.splitlines()[-1]  # no item failed with it
    assert "no kick case ran" in out
    assert "protocol strict; data" not in out  # no empty data line when nothing ran
    assert "Traceback" not in out


def test_two_concurrent_xdist_runs_on_one_cache_say_who_computed_the_baseline(pytester, echo_data):
    args = [sys.executable, "-m", "pytest", *TINY, *echo_data, "--kick-ratio", "0.2,0.5", "-n", "2"]
    runs = [
        subprocess.Popen(args, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    heads = sorted(re.search(r"dense baselines: .*", out).group(0) for out in outs)
    assert heads == [
        "dense baselines: 0 computed by this run, 1 already done",
        "dense baselines: 1 computed by this run, 0 already done",
    ]
    assert sum("dense baseline: computed by this run — factoid_qa on tiny-random-llama" in out for out in outs) == 1
    assert sum("dense baseline: cached, already done — factoid_qa on tiny-random-llama" in out for out in outs) == 1


def test_a_run_for_one_task_collects_only_its_cases(pytester):
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.3,0.5", "--collect-only", "-q")
    out = result.stdout.str()
    assert "deselected" not in out and "not-selected" not in out
    assert re.findall(r"::(test_\w+)\[", out) == ["test_factoid_qa"] * 3
    assert "3 tests collected" in out


def test_a_users_test_of_a_task_not_asked_for_is_named_not_collected(pytester):
    pytester.makepyfile(
        test_mine="""
        import pytest

        def test_regular():
            pass

        @pytest.mark.kick_task("mmlu")
        def test_reasoning(kick_case):
            pass
        """
    )
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "test_mine.py")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "collected 1 item" in out and "deselected" not in out
    assert "pytest-kick: not collected, their task is not in --kick-tasks: test_mine.py::test_reasoning (mmlu)" in out


PROBE = """
import pytest
from pytest_kick import runtime
from pytest_kick.compress import pipeline

def pytest_configure(config):
    config._kick_probe = (pipeline.compress, runtime.Runtime.evaluate)
    original_compress, original_evaluate = config._kick_probe

    def compress(*args, **kwargs):
        print("PROBE compress called")
        return original_compress(*args, **kwargs)

    def evaluate(self, case):
        print(f"PROBE evaluate {case.label}")
        return original_evaluate(self, case)

    pipeline.compress, runtime.Runtime.evaluate = compress, evaluate

def pytest_unconfigure(config):
    pipeline.compress, runtime.Runtime.evaluate = config._kick_probe
"""


def test_dense_inconclusive_skips_compressed_cases_before_any_compression(pytester):
    pytester.makeconftest(PROBE)
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.3,0.5", "-s", "-rs", "--kick-cache-dir", "cache")
    result.assert_outcomes(skipped=3)
    out = result.stdout.str()
    assert "PROBE compress called" not in out
    assert re.findall(r"PROBE evaluate (\S+)", out) == ["dense"]
    assert "magnitude@0.5 was neither compressed nor evaluated" in out
    assert (
        "dense first: 2 compressed cases were neither compressed nor evaluated, as dense is inconclusive "
        "(factoid_qa on tiny-random-llama); 2 compressed variants never built" in out
    )
    # chance level rounded, whatever its float spelling
    assert re.search(r"not significantly above the task's chance level \(\d+(\.\d{1,3})?\)", out)  # rounded


def test_dense_informative_still_compresses(pytester, echo_data):
    """The other side of the probe: with a dense model that scores, the compressed case is built and run."""
    pytester.makeconftest(PROBE)
    result = pytester.runpytest(*TINY, *echo_data, "--kick-ratio", "0.5", "-s")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "PROBE compress called" in out
    assert re.findall(r"PROBE evaluate (\S+)", out) == ["dense", "magnitude@0.5"]
    assert "dense first" not in out


def test_skips_point_at_the_suite_test_not_the_plugin(pytester):
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "-rs")
    lines = [line for line in result.stdout.lines if line.startswith("SKIPPED")]
    assert len(lines) == 2
    for line in lines:
        assert re.match(r"SKIPPED \[1\] \S*suites/test_factoid_qa\.py:\d+: factoid_qa: inconclusive", line), line
        assert "fixtures.py" not in line


def test_a_skip_in_a_users_test_points_at_the_line_that_called_the_fixture(pytester):
    pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.kick_task("factoid_qa")
        def test_factoid_qa(kick_case, kick_evaluate):
            kick_evaluate(kick_case)
        """
    )
    result = pytester.runpytest(*TINY, "--kick-ratio", "0.5", "-rs", "test_own.py")
    result.assert_outcomes(passed=1, skipped=1)  # dense returns its results; compressed is skipped, dense first
    assert "SKIPPED [1] test_own.py:5: factoid_qa: inconclusive" in result.stdout.str()
