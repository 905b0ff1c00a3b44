"""--kick-judge as a user meets it: real pytest sessions (pytester) on tiny-random-llama, judged by the
scripted chat-completions server of judge_server.py on 127.0.0.1 through the real ``openai`` client, or
by a local model. Mechanics only: the gated model is random, the judge scripted."""

import json
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from judge_server import Server  # noqa: E402

pytest.importorskip("openai")

SECRET = "sk-kick-test-9f8e7d6c5b4a39281706"
KEY_ENV = "KICK_JUDGE_TEST_KEY"


def judged(server, *extra):
    return [
        "--kick-model",
        "tiny-random-llama",
        "--kick-tasks",
        "instruction:vicuna",
        "--kick-limit",
        "2",
        "--kick-ratio",
        "0.5",
        "--kick-protocol",
        "kick",
        "--kick-judge",
        "openai:judge-test",
        "--kick-judge-url",
        server.url,
        "--kick-judge-key-env",
        KEY_ENV,
        "--kick-cache-dir",
        "cache",
        "--kick-report",
        "report.json",
        "--kick-markdown",
        "report.md",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    servers = []

    def start(default: str) -> Server:
        servers.append(Server(default=default).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def summary_line(result) -> str:
    return next(line for line in result.stdout.lines if line.startswith("judge openai:judge-test:"))


def report(pytester) -> dict:
    return json.loads((pytester.path / "report.json").read_text())


def test_both_orders_averaged_cached_and_the_key_in_no_file(pytester, serve):
    server = serve("biased")  # Assistant 1 gets 9, Assistant 2 gets 6, whoever they are
    result = pytester.runpytest(*judged(server))
    result.assert_outcomes(passed=2)
    asked = server.requests
    assert server.steps.count("prefers") == 12  # the discrimination check: 2 items x 3 degraded copies x 2 orders
    assert 4 <= asked - 12 <= 8  # 2 items x 2 orders, for dense and (where its answer differs) compressed
    cases = report(pytester)["cases"]
    assert [c["verdict"] for c in cases] == ["sane", "matching"]
    check = cases[0]["discrimination"]
    assert check == cases[1]["discrimination"] and check["fit"] and check["preference_rate"] == 1.0
    assert check["comparisons"] == 6 and check["position_disagreement_rate"] == 0.0
    assert (
        "judge check instruction:vicuna: prefers the reference over a degraded copy in 6 of 6 (100%"
        in result.stdout.str()
    )
    assert report(pytester)["meta"]["judge"]["discrimination"]["instruction:vicuna"] == check
    assert "judge check instruction:vicuna: prefers the reference" in (pytester.path / "report.md").read_text()
    assert cases[0]["metric"] == "judge-judge-test_vs_gpt35" and cases[0]["dense"] == pytest.approx(7.5)
    assert cases[1]["details"]["order_disagreement"] == 1.0
    line = summary_line(result)
    assert f"{asked} requests" in line and "orders disagree on 100% of 4 pairwise items" in line
    judge = report(pytester)["meta"]["judge"]
    assert judge["requests"] == asked and judge["order_disagreement_rate"] == 1.0 and judge["item_errors"] == 0
    assert judge["read_first_time"] == 1.0
    assert judge["tokens_in"] == 100 * asked and judge["tokens_out"] == 10 * asked  # the server's usage

    again = pytester.runpytest(*judged(server))  # same answers: every judgment from the cache
    again.assert_outcomes(passed=2)
    assert server.requests == asked
    assert summary_line(again).startswith("judge openai:judge-test: 0 requests (0 retries), ")
    rerun = report(pytester)["meta"]["judge"]
    assert rerun["requests"] == 0 and rerun["cache_hits"] >= 4 and rerun["item_errors"] == 0

    assert server.authorizations == {f"Bearer {SECRET}"}  # the key was sent ...
    files = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.parts[-3] == "judge" for p in files)  # (the reply cache is there)
    for path in files:  # ... and is in no file: cache, baselines, reports
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.stdout.str() + result.stderr.str() + again.stdout.str()


def test_failures_are_retried_and_counted_and_flips_show_the_judges_reasons(pytester, serve):
    server = serve("500,drop,hash")  # every prompt: HTTP 500, a dropped connection, then a verdict that scores
    result = pytester.runpytest(*judged(server, "--kick-limit", "6"))  # each answer by its text
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)  # a verdict, whichever
    assert "errors" not in result.parseoutcomes()
    judge = report(pytester)["meta"]["judge"]
    assert judge["item_errors"] == 0 and judge["requests"] == server.requests
    items_asked = judge["requests"] - server.steps.count("prefers")  # the discrimination check's asks aside
    assert judge["retries"] == 2 * items_asked // 3  # two of every three attempts were retries
    assert server.steps.count("hash") == items_asked // 3
    flips = [
        json.loads(line)
        for path in (pytester.path / "cache" / "reports").rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert flips, "six random answers changed by pruning, judged by their text: some score must change"
    for flip in flips:
        for run in ("dense", "compressed"):
            assert flip[f"{run}_judge"].startswith("[model as Assistant 2]\n")
            assert "\n\n[model as Assistant 1]\n" in flip[f"{run}_judge"]
            assert not math.isnan(flip[f"{run}_score"])


def test_too_many_judge_errors_make_the_case_an_error_and_nothing_is_dropped(pytester, serve):
    server = serve("garbage")  # replies without scores, however often asked
    result = pytester.runpytest(*judged(server))
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert re.search(r"ERROR at call of test_instruction\[vicuna-tiny-random-llama-dense\]", out)
    assert (
        "the judge failed on 2 of 2 items (100%, more than 5%): no verdict; e.g. judge reply could not be "
        "read (3 asks): 'no scores here, sorry'" in out
    )  # what the judge wrote instead of scores
    assert (
        "judge errors: instruction:vicuna tiny-random-llama dense: 2 of 2 items no verdict (case error) "
        "(dense 2)" in out
    )
    # the dense run alone leaves no verdict, so the compressed model is not evaluated, and the line says so
    assert (
        "judge errors: instruction:vicuna tiny-random-llama magnitude@0.5: 2 of 2 items no verdict (case error) "
        "(dense 2, compressed not evaluated)" in out
    )
    cases = report(pytester)["cases"]
    assert len(cases) == 2 and all(c["verdict"] == "judge-error" for c in cases)
    assert cases[0]["judge_errors"] == {
        "items": 2,
        "dense": 2,
        "compressed": None,
        "left_out": 2,
        "max_share": 0.05,
        "exceeded": True,
    }
    judge = report(pytester)["meta"]["judge"]
    assert judge["item_errors"] == 2 and judge["reasks"] == 8  # 2 items x 2 orders, re-asked twice each
    checked = server.steps.count("prefers")  # the discrimination check, passed: 2 items x 3 copies x 2 orders
    assert checked == 12 and server.requests - checked == 12  # nothing silently skipped: each order asked 3 times
    assert "⛔ judge errors, no verdict" in (pytester.path / "report.md").read_text()


def test_judge_options_are_checked_before_anything_runs(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = pytester.runpytest("--kick-model", "tiny-random-llama", "--kick-judge", "openai:gpt-4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--kick-judge openai:gpt-4 needs the endpoint: --kick-judge-url URL or $OPENAI_BASE_URL" in result.stderr.str()
    )


def test_local_tiny_random_llama_judge_end_to_end(pytester, monkeypatch):
    """Mechanics of local:<model>: its own engine, real prompts. Scores read from its probabilities are always
    readable, but a random judge cannot tell references from degraded copies: every case is inconclusive by the
    discrimination check, and a rerun asks the judge nothing. Scoring its free text instead, it writes no scores
    at all: the check's comparisons are judge errors, and so are the cases."""
    from pytest_kick.judge import local

    monkeypatch.setattr(local, "DEFAULT_MAX_NEW_TOKENS", 16)  # random text: keep it short
    args = [
        "--kick-model",
        "tiny-random-llama",
        "--kick-tasks",
        "instruction:vicuna",
        "--kick-limit",
        "2",
        "--kick-ratio",
        "0.5",
        "--kick-judge",
        "local:tiny-random-llama",
        "--kick-cache-dir",
        "cache",
        "--kick-report",
        "report.json",
        "-p",
        "no:cacheprovider",
        "-rs",
    ]
    result = pytester.runpytest(*args)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*instruction:vicuna: inconclusive: the judge local:tiny-random-llama prefers the reference answer over a "
            "degraded copy in * of 6 comparisons*use a larger judge*"
        ]
    )
    cases = report(pytester)["cases"]
    assert all(c["verdict"] == "inconclusive" and not c["discrimination"]["fit"] for c in cases)
    judge = report(pytester)["meta"]["judge"]
    assert judge["requests"] == 2 * 4 and judge["item_errors"] == 0  # strict: each reference and its 3 copies
    again = pytester.runpytest(*args)
    again.assert_outcomes(skipped=2)
    assert report(pytester)["meta"]["judge"]["requests"] == 0
    assert report(pytester)["meta"]["judge"]["cache_hits"] == 8

    text = pytester.runpytest(*args, "--kick-judge-scoring", "text", "--kick-cache-dir", "cache-text")
    text.assert_outcomes(errors=2)
    text.stdout.fnmatch_lines(
        [
            "*instruction:vicuna: the judge failed on 6 of 6 comparisons of its discrimination check (100%, more "
            "than 5%): no verdict; e.g. judge reply could not be read (3 asks)*"
        ]
    )
    assert all(c["verdict"] == "judge-error" for c in report(pytester)["cases"])
    assert [c["outcome"] for c in report(pytester)["cases"]] == ["error", "error"]


def test_a_search_gates_the_judged_task_not_its_rouge_version(pytester, serve):
    """--kick-search with a judge records the judge's metric and tests its ratings against the judge's floor."""
    server = serve("biased")
    args = [a for a in judged(server) if a not in ("--kick-ratio", "0.5")]
    result = pytester.runpytest(
        *args, "--kick-compressor", "magnitude", "--kick-search", "--kick-search-resolution", "0.2"
    )
    out = result.stdout.str()
    assert result.ret == 0, out
    [case] = [c for c in report(pytester)["cases"] if c["search"]]
    assert case["metric"] == "judge-judge-test_vs_gpt35" and case["dense"] == pytest.approx(7.5)
