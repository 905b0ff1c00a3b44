"""--kick-baseline-dir: dense baselines as committed, reviewable files with an environment envelope."""

import json

import kick_args

TINY = kick_args.FACTOID_AT_HALF


def run(pytester, *args):
    return pytester.runpytest(*TINY, "--kick-baseline-dir", "baselines", "--kick-report", "r.json", *args)


def statuses(pytester):
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    return {c["compressor"]: c["baseline"] for c in cases}


def baseline_file(pytester):
    return pytester.path / "baselines" / "tiny-random-llama" / "factoid_qa.json"


def test_missing_file_is_written_then_read(pytester, echo_data):
    run(pytester, *echo_data).assert_outcomes(passed=2)
    assert statuses(pytester)["dense"] == "written"
    data = json.loads(baseline_file(pytester).read_text())
    assert data["envelope"]["batch_size"] == 16 and data["envelope"]["device"] == "cpu"
    assert data["envelope"]["model"]["name"] == "tiny-random-llama"
    assert len(data["result"]["scores"]) == 8
    second = run(pytester, *echo_data)
    second.assert_outcomes(passed=2)
    assert statuses(pytester) == {"dense": "file", "magnitude": "file"}
    assert "baseline: file" in second.stdout.str()


def test_environment_mismatch_warns_naming_the_field_or_fails_when_strict(pytester, echo_data):
    run(pytester, *echo_data).assert_outcomes(passed=2)
    path = baseline_file(pytester)
    data = json.loads(path.read_text())
    data["envelope"]["versions"]["torch"] = "1.0.0"
    path.write_text(json.dumps(data))
    warned = run(pytester, *echo_data, "-W", "default")
    warned.assert_outcomes(passed=2)
    out = warned.stdout.str()
    assert "KickWarning" in out and "was made in another environment: versions:" in out
    strict = run(pytester, *echo_data, "--kick-strict-env")
    strict.assert_outcomes(failed=2)
    assert "(--kick-strict-env)" in strict.stdout.str()
    assert json.loads(path.read_text()) == data  # reported, never rewritten


def test_other_items_are_an_error_until_regenerated(pytester, echo_data):
    run(pytester, *echo_data).assert_outcomes(passed=2)
    other = run(pytester, *echo_data, "--kick-limit", "5")
    other.assert_outcomes(failed=2)
    assert "was made for other items or prompts (items:" in other.stdout.str()
    assert "rerun with --kick-regen" in other.stdout.str()
    run(pytester, *echo_data, "--kick-limit", "5", "--kick-regen").assert_outcomes(passed=2)
    assert statuses(pytester) == {"dense": "regenerated", "magnitude": "file"}
    assert json.loads(baseline_file(pytester).read_text())["envelope"]["n"] == 5


def test_corrupt_file_is_a_clear_error_and_kept(pytester, echo_data):
    run(pytester, *echo_data).assert_outcomes(passed=2)
    baseline_file(pytester).write_text("not json")
    result = run(pytester, *echo_data)
    result.assert_outcomes(failed=2)
    assert f"corrupt baseline file {baseline_file(pytester)}" in result.stdout.str()
    assert baseline_file(pytester).read_text() == "not json"


def test_regen_rewrites_once_across_xdist_workers(pytester, echo_data):
    pytester.runpytest_subprocess(*TINY, *echo_data, "--kick-baseline-dir", "baselines").assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess(
        *TINY,
        *echo_data,
        "--kick-ratio",
        "0.2,0.5",
        "--kick-baseline-dir",
        "baselines",
        "--kick-regen",
        "-n",
        "2",
        "--kick-report",
        "r.json",
    )
    result.assert_outcomes(passed=3)
    assert sorted(statuses_list(pytester)) == ["file", "file", "regenerated"]


def statuses_list(pytester):
    return [c["baseline"] for c in json.loads((pytester.path / "r.json").read_text())["cases"]]


def test_regen_without_baseline_dir_is_a_usage_error(pytester):
    result = pytester.runpytest(*TINY, "--kick-regen")
    assert result.ret == 4
    assert "--kick-regen applies to baseline files: give --kick-baseline-dir DIR too" in result.stderr.str()


def test_regen_replaces_a_corrupt_file(pytester, echo_data):
    run(pytester, *echo_data).assert_outcomes(passed=2)
    baseline_file(pytester).write_text("not json")
    run(pytester, *echo_data, "--kick-regen").assert_outcomes(passed=2)
    assert statuses(pytester)["dense"] == "regenerated"
    assert json.loads(baseline_file(pytester).read_text())["envelope"]["n"] == 8


def test_edited_results_that_no_longer_match_the_envelope_are_refused(pytester, echo_data):
    run(pytester, *echo_data).assert_outcomes(passed=2)
    data = json.loads(baseline_file(pytester).read_text())
    data["result"]["item_ids"] = list(reversed(data["result"]["item_ids"]))
    baseline_file(pytester).write_text(json.dumps(data))
    result = run(pytester, *echo_data)
    result.assert_outcomes(failed=2)
    assert "its results are not for the items its envelope names" in result.stdout.str()
