"""What a new user meets first: help that works, one clear message per bad input, nothing lost.

Real pytest sessions (pytester) with real command lines. Every damaging input is run against a cache that
already holds files, and the files are compared byte for byte (sha256) before and after.
"""

import argparse
import hashlib
import re
import subprocess
import sys

import pytest

from pytest_kick import options

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


def hashes(root):
    """sha256 of every file under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def filled_cache(pytester):
    """A cache dir that already holds a baseline and a converted model's files: what a bad run must not touch."""
    cache = pytester.path / ".kick"
    (cache / "baselines" / "tiny-random-llama").mkdir(parents=True)
    (cache / "baselines" / "tiny-random-llama" / "factoid_qa-0123456789abcdef.json").write_text('{"format": 1}')
    (cache / "models" / "m").mkdir(parents=True)
    (cache / "models" / "m" / "model.safetensors").write_bytes(b"\0weights\1")
    before = hashes(cache)
    yield cache
    assert hashes(cache) == before  # nothing added, changed or removed


# --- 1. pytest --help ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_with_the_plugin_installed(tmp_path, flag):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", flag], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "--kick-tolerance=VALUE" in result.stdout
    assert "(default: 5%)" in result.stdout  # a % in a default is shown as itself
    assert "kick_tolerance (string)" in result.stdout  # the ini keys are listed too


class _Recorder:
    """Stands in for pytest's parser: records what add_options registers, exactly as given."""

    def __init__(self):
        self.options, self.inis = [], []

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, *names, **kwargs):
        self.options.append((names, kwargs))

    def addini(self, name, help, **kwargs):
        self.inis.append((name, help))


def test_every_options_help_survives_argparse_formatting():
    """argparse %-formats each help text (``%(default)s``); a lone % (``5%)``) makes --help crash."""
    recorder = _Recorder()
    options.add_options(recorder)
    assert len(recorder.options) == len(options.OPTIONS) == len(recorder.inis)
    for names, kwargs in recorder.options:
        parser = argparse.ArgumentParser(prog="pytest")
        parser.add_argument(*names, **kwargs)
        text = parser.format_help()  # raises ValueError/TypeError on a stray %
        assert names[0] in text
    for name, help_text in recorder.inis:  # pytest prints ini help as is: no %% doubled for argparse there
        assert "%%" not in help_text, name


# --- 2. options and ini values, checked before any model loads ---------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--kick-ratio", "0.5,,0.3"],
            "--kick-ratio: '0.5,,0.3' has an empty entry; separate the entries with single commas",
        ),
        (["--kick-ratio", "0.5,"], "--kick-ratio: '0.5,' has an empty entry"),
        (["--kick-compressor", "magnitude,,wanda"], "--kick-compressor: 'magnitude,,wanda' has an empty entry"),
        (["--kick-tasks", "factoid_qa,,mmlu"], "--kick-tasks: 'factoid_qa,,mmlu' has an empty entry"),
        (["--kick-tolerance", "5%,,mmlu=10%"], "--kick-tolerance: '5%,,mmlu=10%' has an empty entry"),
    ],
)
def test_empty_list_entries_are_usage_errors(pytester, filled_cache, args, message):
    result = pytester.runpytest(*TINY, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_model_list_with_an_empty_entry_is_a_usage_error(pytester, filled_cache):
    result = pytester.runpytest("--kick-model", "tiny-random-llama,,smollm2-135m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--kick-model: 'tiny-random-llama,,smollm2-135m' has an empty entry" in result.stderr.str()


def test_a_bad_ini_value_names_the_ini_key_and_its_file(pytester, filled_cache):
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        kick_model = "tiny-random-llama"
        kick_ratio = "2"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"pytest-kick: kick_ratio in {pytester.path / 'pyproject.toml'}: 2 is outside [0, 1)" in err
    assert "--kick-ratio" not in err  # a flag the user never typed


def test_a_bad_ini_value_given_again_on_the_command_line_names_the_flag(pytester, filled_cache):
    pytester.makeini("[pytest]\nkick_model = tiny-random-llama\nkick_limit = 0\n")
    result = pytester.runpytest("--kick-limit", "-3", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pytest-kick: --kick-limit: must be at least 1 (got -3)" in result.stderr.str()


def test_relative_paths_in_the_ini_file_are_relative_to_its_directory(pytester):
    pytester.makeini("[pytest]\nkick_model = tiny-random-llama\nkick_data_dir = no-such-data\n")
    sub = pytester.mkdir("sub")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--rootdir", str(pytester.path), "-c", str(pytester.path / "tox.ini"), str(sub)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    ini = pytester.path / "tox.ini"
    assert f"kick_data_dir in {ini}: {pytester.path / 'no-such-data'} is not a directory" in result.stderr.str()


# --- 3. what dooms every item is said once --------------------------------------------------------------


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


# --- 4. which baselines this run computed ---------------------------------------------------------------


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


# --- 5. only the cases asked for are collected -------------------------------------------------------------


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


# --- 6. dense first ------------------------------------------------------------------------------------------

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


# --- 7. skips are reported at the user's test ------------------------------------------------------------------


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


# --- output paths are checked before the run, not after it ---------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kick-report", "adir"], "--kick-report: {p}/adir is a directory; give a file path"),
        (
            ["--kick-markdown", "afile/summary.md"],
            "--kick-markdown: {p}/afile is a file, so {p}/afile/summary.md cannot be written",
        ),
        (["--kick-plot", "afile"], "--kick-plot: {p}/afile is a file; give a directory"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_a_usage_error(pytester, filled_cache, args, message):
    (pytester.path / "adir").mkdir()
    (pytester.path / "afile").write_text("mine")
    result = pytester.runpytest(*TINY, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message.format(p=pytester.path) in result.stderr.str()
    assert (pytester.path / "afile").read_text() == "mine" and not list((pytester.path / "adir").iterdir())
