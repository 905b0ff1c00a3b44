"""What a new user meets first: help that works, one clear message per bad input, nothing lost.

Real pytest sessions (pytester) with real command lines. Every damaging input is run against a cache that
already holds files, and the files are compared byte for byte (sha256) before and after. This module: --help,
options and ini values checked before any model loads, output paths; the session itself (what dooms every
item, baselines, collection, dense first, skips) is in test_first_contact_session.py.
"""

import argparse
import subprocess
import sys

import first_contact_helpers
import pytest
from first_contact_helpers import TINY

from pytest_kick import options

filled_cache = first_contact_helpers.filled_cache  # the fixture


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
