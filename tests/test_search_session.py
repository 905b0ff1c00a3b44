"""--kick-search as users meet it: pytester sessions on tiny-random-llama with a task whose score is planted as a
function of the sparsity the compressor really achieved, so the boundary the search must find is known."""

import json

import pytest

# A registered task whose score depends only on the sparsity of the model's decoder weights: every item is
# right while the (nearest 0.05 of the) measured sparsity is in MATCHING, half the items otherwise.
PLANTED = """
from pytest_kick.api import Dataset, Example, Settings, subset, text_hash

MATCHING = {matching!r}

class Planted:
    name = family = "planted"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.0

    def load(self, settings):
        return Dataset(tuple(Example(f"p{{k}}", f"q{{k}}", ("a",)) for k in range(40)), "planted", "0")

    def split(self, dataset, settings):
        return [], subset(dataset.examples, settings.limit, settings.seed, self.name)

    def template_hash(self, settings):
        return text_hash("planted")

    def evaluate(self, items, shots, settings, run):
        weights = [p for name, p in run.engine.model.named_parameters() if ".layers." in name and p.dim() == 2]
        zeros = sum(int((p == 0).sum()) for p in weights) / sum(p.numel() for p in weights)
        level = round(round(zeros * 20) / 20, 2)
        ok = level == 0 or level in MATCHING
        scores = [1.0 if ok or k % 2 else 0.0 for k in range(len(items))]
        return scores, [f"sparsity {{zeros:.3f}}"] * len(items)
"""

ARGS = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-compressor",
    "magnitude",
    "--kick-tasks",
    "planted",
    "--kick-search",
    "-p",
    "no:cacheprovider",
]


def planted(pytester, matching):
    pytester.makepyfile(planted_task=PLANTED.format(matching=sorted(matching)))
    pytester.makeconftest("""
        from planted_task import Planted
        def pytest_kick_tasks(config):
            return [Planted()]
    """)
    return pytester


def report(pytester, name="r.json"):
    return json.loads((pytester.path / name).read_text())


def test_search_is_one_item_per_task_and_compressor_and_replaces_the_default_grid(pytester):
    planted(pytester, {0.05})
    result = pytester.runpytest(*ARGS, "--kick-compressor", "magnitude,rtn", "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_search.py::test_search[tiny-random-llama-magnitude]" in out
    assert "test_search.py::test_search[tiny-random-llama-rtn]" in out
    assert "test_registered[tiny-random-llama-dense]" in out
    assert "magnitude-0.1" not in out and "rtn-w8" not in out  # the default grid is searched instead
    # ratios asked for still run as grid cases, before the searches
    result = pytester.runpytest(*ARGS, "--kick-ratio", "0.5", "--collect-only", "-q")
    lines = [line for line in result.stdout.lines if "::" in line]
    assert [line.split("::")[-1] for line in lines] == [
        "test_registered[tiny-random-llama-dense]",
        "test_registered[tiny-random-llama-magnitude-0.5]",
        "test_search[tiny-random-llama-magnitude]",
    ]


def test_search_finds_a_planted_boundary_and_reports_both_readings(pytester):
    # matching to 0.3, failing at 0.35-0.45, matching again at 0.5-0.6, failing above
    planted(pytester, {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.55, 0.6})
    result = pytester.runpytest(*ARGS, "--kick-report", "r.json", "--kick-markdown", "s.md", "--kick-plot", "plots")
    result.assert_outcomes(passed=2)
    case = next(c for c in report(pytester)["cases"] if c.get("search"))
    search = case["search"]
    assert search["largest_matching"]["level"] == "0.6" and search["largest_matching"]["next_failing"] == "0.65"
    assert search["largest_safe"]["level"] == "0.3" and search["largest_safe"]["next_failing"] == "0.35"
    assert search["complete"] and search["axis"] == "sparsity" and search["resolution"] == 0.05
    # the gate's confidence at each reading: a matching level with no loss, and its interval
    for key in ("largest_matching", "largest_safe"):
        evidence = search[key]["evidence"]
        assert evidence["verdict"] == "matching" and evidence["drop"] == 0.0 and evidence["lost"] == 0
        assert evidence["drop_low"] is not None and evidence["sparsity"] == pytest.approx(
            float(search[key]["level"]), abs=0.01
        )
    levels = [p["ratio"] for p in search["points"]]
    assert levels[:4] == ["0.2", "0.4", "0.6", "0.8"] and len(levels) == len(set(levels))
    assert {p["ratio"]: p["verdict"] for p in search["points"]}["0.4"] == "not matching"
    out = result.stdout.str()
    assert "largest matching" in out and "largest safe" in out
    row = next(line for line in result.stdout.lines if "planted" in line and "magnitude" in line)
    assert "0.6 (0.65 fails; drop +0.0%" in row and "0.3 (0.35 fails; drop +0.0%" in row
    assert "search planted tiny-random-llama magnitude: 0.4 -> 0.500" in result.stderr.str()  # progress
    md = (pytester.path / "s.md").read_text()
    assert "| planted | tiny-random-llama | magnitude | 1.000 (n=40) | 0.6 (0.65 fails" in md
    assert (pytester.path / "plots" / "tiny-random-llama-planted.png").stat().st_size > 0


def test_search_fails_when_no_level_matches(pytester):
    planted(pytester, set())
    result = pytester.runpytest(*ARGS, "--kick-report", "r.json", "--kick-search-resolution", "0.1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*not even magnitude@0.1 matches dense (tolerance 5% relative)*"])
    search = next(c for c in report(pytester)["cases"] if c.get("search"))["search"]
    assert search["largest_matching"]["level"] is None and search["largest_safe"]["next_failing"] == "0.1"


def test_a_quantizer_is_searched_over_its_bit_widths(pytester):
    # round-to-nearest zeroes small weights: on this model w4g128 leaves about 13 % zeros, w3g128 about 27 %
    planted(pytester, {0.05, 0.1, 0.15, 0.2})
    result = pytester.runpytest(*ARGS, "--kick-compressor", "rtn", "--kick-report", "r.json")
    result.assert_outcomes(passed=2)
    search = next(c for c in report(pytester)["cases"] if c.get("search"))["search"]
    assert search["axis"] == "bits" and [p["ratio"] for p in search["points"]] == ["w8", "w4g128", "w3g128", "w2g128"]
    assert search["largest_matching"]["level"] == search["largest_safe"]["level"] == "w4g128"
    assert search["largest_safe"]["next_failing"] == "w3g128" and search["complete"]
    row = next(line for line in result.stdout.lines if "planted" in line and "rtn" in line)
    assert row.count("w4g128 (w3g128 fails; drop +0.0%") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kick-compressor", "int8"], "--kick-search: none of int8 has a level to search"),
        (["--kick-search-resolution", "0"], "--kick-search-resolution: 0 is outside (0, 0.2]"),
        (["--kick-search-resolution", "fine"], "--kick-search-resolution: 'fine' is not a number"),
    ],
)
def test_bad_search_settings_are_one_clear_message(pytester, args, message):
    planted(pytester, set())
    result = pytester.runpytest(*ARGS, *args, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
