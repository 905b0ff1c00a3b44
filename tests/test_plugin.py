"""The plugin as a user meets it: real pytest sessions (pytester) with real command lines.

These run the bundled suite on ``tiny-random-llama`` (builds in milliseconds): plugin mechanics, not
model quality. Model behaviour is tested on smollm2-135m in test_integration_smollm2.py. Verdicts, tolerances,
the baseline cache, data directories and xdist are in test_plugin_verdicts.py.
"""

import json
import re

import kick_args
import pytest

TINY = kick_args.FACTOID


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
