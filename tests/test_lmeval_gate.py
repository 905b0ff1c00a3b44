"""--kick-from-lmeval: two lm-eval output directories (lm-eval 0.4.13's format, tests/lmeval_helpers.py) gated
item by item, as a user runs it: one case per task both runs have, the verdict, the flip report with both
responses, the JSON report; and runs that are not the same evaluation refused, naming the field."""

from __future__ import annotations

import json

from lmeval_helpers import capitals, quiz, write_run

BASE = ["-p", "no:cacheprovider", "--kick-cache-dir", "cache"]


def _runs(pytester, dense: dict, compressed: dict, **kwargs):
    write_run(pytester.path / "dense", "org/Model-7B", dense, **kwargs.get("dense_kw", {}))
    write_run(pytester.path / "pruned", "/models/Model-7B-pruned", compressed, **kwargs.get("compressed_kw", {}))
    return "dense,pruned"


def test_two_runs_are_gated_item_by_item(pytester):
    """A multiple-choice task the pruned model kept (passes) and a generation task it lost (fails, with a flip
    report naming the document and both responses); a task only one run has is left out."""
    dirs = _runs(
        pytester,
        {"colours": quiz(40, 30), "capitals": capitals(30, 24), "dense_only": capitals(5, 5)},
        {"colours": quiz(40, 30), "capitals": capitals(30, 6)},
    )
    result = pytester.runpytest(*BASE, "--kick-from-lmeval", dirs, "--kick-report", "report.json", "-v")
    out = result.stdout.str()
    assert result.ret == 1, out
    assert "test_registered[colours-Model-7B-lmeval] PASSED" in out
    assert "test_registered[capitals-Model-7B-lmeval] FAILED" in out
    assert "dense_only" not in out
    assert "capitals: lmeval is not matching dense" in out
    cases = {(c["task"], c["compressor"]): c for c in json.loads((pytester.path / "report.json").read_text())["cases"]}
    lost = cases[("lmeval:capitals", "lmeval")]
    assert (lost["metric"], lost["n"], lost["dense"], lost["compressed"]) == ("exact_match", 30, 0.8, 0.2)
    assert (lost["lost"], lost["kept"], lost["gained"]) == (18, 6, 0)
    kept = cases[("lmeval:colours", "lmeval")]
    assert (kept["metric"], kept["dense"], kept["compressed"], kept["chance"]) == ("acc", 0.75, 0.75, 0.25)
    flips = pytester.path / "cache" / "reports" / "Model-7B" / "lmeval-capitals-lmeval-as-given.jsonl"
    rows = [json.loads(line) for line in flips.read_text().splitlines()]
    assert len(rows) == 18
    first = next(r for r in rows if r["id"] == "6")  # rows follow the gate's (seeded) evaluation order
    assert first["id"] == "6" and first["question"] == "Q: Capital number 6?\nA:" and first["answers"] == ["City6"]
    assert (first["dense_output"], first["compressed_output"]) == ("City6", "Nowhere")
    assert (first["dense_score"], first["compressed_score"]) == (1.0, 0.0)


def test_a_multiple_choice_flip_shows_the_choices(pytester):
    dirs = _runs(pytester, {"colours": quiz(40, 36)}, {"colours": quiz(40, 12)})
    result = pytester.runpytest(*BASE, "--kick-from-lmeval", dirs)
    assert result.ret == 1, result.stdout.str()
    flips = pytester.path / "cache" / "reports" / "Model-7B" / "lmeval-colours-lmeval-as-given.jsonl"
    row = json.loads(flips.read_text().splitlines()[0])  # the sequential gate stopped at 32 of 40: one of them
    assert int(row["id"]) >= 12 and row["choices"] == [" red", " green", " blue", " black"]
    assert (row["correct"], row["dense_output"], row["compressed_output"]) == (" red", "red", "green")


def test_runs_of_another_evaluation_are_refused_naming_the_field(pytester):
    cases = {
        "task version": {"dense_kw": {"versions": {"colours": 1.0}}, "compressed_kw": {"versions": {"colours": 2.0}}},
        "few-shot count (n-shot)": {"dense_kw": {"shots": {"colours": 5}}, "compressed_kw": {"shots": {"colours": 0}}},
        "limit": {"dense_kw": {"limit": 40}, "compressed_kw": {"limit": None}},
    }
    for field, kwargs in cases.items():
        dirs = _runs(pytester, {"colours": quiz(40, 30)}, {"colours": quiz(40, 30)}, **kwargs)
        result = pytester.runpytest(*BASE, "--kick-from-lmeval", dirs)
        assert result.ret == 4, (field, result.stdout.str())
        assert f"lm-eval task colours: the two runs differ in {field}" in result.stderr.str(), field


def test_other_items_are_refused_naming_the_hash(pytester):
    other = quiz(40, 30)
    other[3] = {**other[3], "prompt_hash": "0" * 64}
    dirs = _runs(pytester, {"colours": quiz(40, 30)}, {"colours": other})
    result = pytester.runpytest(*BASE, "--kick-from-lmeval", dirs)
    assert result.ret == 4
    assert "the two runs differ in prompt_hash of doc_id 3" in result.stderr.str()
    dirs = _runs(pytester, {"colours": quiz(40, 30)}, {"colours": quiz(39, 30)})
    result = pytester.runpytest(*BASE, "--kick-from-lmeval", dirs)
    assert result.ret == 4
    assert "differ in doc_id: 40 documents" in result.stderr.str()


def test_what_does_not_fit_is_a_usage_error(pytester):
    dirs = _runs(pytester, {"colours": quiz(40, 30)}, {"colours": quiz(40, 30)})
    for extra, message in (
        (["--kick-from-lmeval", "dense"], "give two lm-eval output directories"),
        (["--kick-from-lmeval", "dense,nowhere"], "nowhere is not a directory"),
        (["--kick-from-lmeval", dirs, "--kick-tasks", "mmlu"], "mmlu is not a task of the lm-eval runs"),
        (["--kick-from-lmeval", dirs, "--kick-ratio", "0.5"], "--kick-ratio does not apply to --kick-from-lmeval"),
        (["--kick-from-lmeval", "cache,dense"], "holds no lm-eval results_*.json"),
    ):
        (pytester.path / "cache").mkdir(exist_ok=True)
        result = pytester.runpytest(*BASE, *extra)
        assert result.ret == 4, (extra, result.stdout.str())
        assert message in result.stderr.str(), (extra, result.stderr.str())
