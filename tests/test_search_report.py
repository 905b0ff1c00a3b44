"""--kick-search's records in the session table, the Markdown summary and the plot (no model needed)."""

from pytest_kick import report, report_markdown
from pytest_kick.plot import plot
from pytest_kick.record import CaseRecord


def evidence(ratio, verdict, compressed, drop):
    return {
        "ratio": ratio,
        "verdict": verdict,
        "compressed": compressed,
        "drop": drop,
        "drop_low": drop - 0.1,
        "drop_high": drop + 0.1,
        "drop_lower_bound": drop - 0.08,
        "p_value": 0.5,
        "lost": 2,
        "gained": 1,
        "threshold": 0.38,
        "sparsity": float(ratio),
    }


POINTS = [
    evidence("0.2", "matching", 0.40, 0.0),
    evidence("0.4", "not matching", 0.30, 0.25),
    evidence("0.3", "matching", 0.39, 0.025),
    evidence("0.35", "not matching", 0.35, 0.125),
]
SEARCH = {
    "axis": "sparsity",
    "resolution": 0.05,
    "evaluations": 4,
    "complete": True,
    "points": POINTS,
    "largest_matching": {"level": "0.3", "resolved": True, "next_failing": "0.35", "evidence": POINTS[2]},
    "largest_safe": {"level": "0.3", "resolved": True, "next_failing": "0.35", "evidence": POINTS[2]},
}
RECORDS = [
    CaseRecord(**r)
    for r in [
        {"task": "mmlu", "model": "m", "compressor": "dense", "ratio": None, "dense": 0.4, "n": 100, "verdict": "sane"},
        {
            "task": "mmlu",
            "model": "m",
            "compressor": "magnitude",
            "ratio": "0.5",
            "dense": 0.4,
            "n": 100,
            "compressed": 0.25,
            "drop": 0.375,
            "verdict": "not matching",
            "threshold": 0.38,
            "metric": "accuracy",
        },
        {
            "task": "mmlu",
            "model": "m",
            "compressor": "magnitude",
            "dense": 0.4,
            "n": 100,
            "metric": "accuracy",
            "tolerance": "5% relative",
            "verdict": "matching",
            "search": SEARCH,
        },
        {"task": "mmlu", "model": "m", "compressor": "wanda", "dense": 0.4, "n": 100, "verdict": "inconclusive"},
    ]
]


def test_table_shows_both_readings_with_their_confidence_next_to_the_grid():
    text = report.render(RECORDS)
    assert "largest matching" in text and "largest safe" in text
    row = next(line for line in text.splitlines() if "magnitude" in line)
    assert "0.250" in row  # the grid case keeps its column
    assert row.count("0.3 (0.35 fails; drop +2.5% CI -7.5..+12.5%, p=0.5)") == 2
    assert report.search_lines(RECORDS) == ["search mmlu m wanda: inconclusive"]


def test_markdown_has_a_search_section_and_no_search_row_in_the_case_table():
    md = report_markdown.markdown(RECORDS, {})
    assert "### Largest matching level (--kick-search)" in md
    assert "| mmlu | m | magnitude | 0.400 (n=100) | 0.3 (0.35 fails; drop +2.5% CI -7.5..+12.5%, p=0.5) |" in md
    assert md.count("| mmlu | m | magnitude |") == 2  # the 0.5 grid case and the search


def test_plot_draws_the_searched_levels_and_marks_the_readings(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = []
    real = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append(kwargs.get("label"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    [path] = plot(RECORDS, tmp_path)
    assert path.stat().st_size > 0
    assert "magnitude largest matching 0.3" in drawn and "magnitude largest safe 0.3" in drawn


def test_a_reading_at_the_limit_of_the_search_says_so():
    from pytest_kick.formats import reading_text

    at_limit = {"level": "0.8", "resolved": True, "next_failing": None, "evidence": POINTS[0]}
    assert reading_text(at_limit).startswith("0.8 (the search's limit; drop +0.0%")
    assert (
        reading_text({"level": None, "resolved": True, "next_failing": "0.05", "evidence": None}) == "none (0.05 fails)"
    )
