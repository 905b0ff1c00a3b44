"""A user's own tasks: written against pytest_kick.api only, registered by the pytest_kick_tasks hook (conftest)
or an installed package's entry point, collected without a suite file, listed by --help and validated."""

import json

import kick_args
import pytest

import pytest_kick.api as api

TINY = kick_args.MAGNITUDE

# A task written against pytest_kick.api only: one yes/no log-likelihood request per item.
USER_TASK = """
from pytest_kick.api import (Dataset, Example, LoglikelihoodRequest, OneRequestPerItem, Settings, read_jsonl,
                             file_hash, subset, text_hash)
from pathlib import Path

class Capitals(OneRequestPerItem):
    name = family = "capitals"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = 0.5

    def load(self, settings: Settings) -> Dataset:
        path = Path(__file__).parent / "capitals.jsonl"
        rows = read_jsonl(path, required=("id", "q", "a"))
        return Dataset(tuple(Example(r["id"], r["q"], (r["a"],)) for r in rows), f"file:{path}", file_hash(path))

    def split(self, dataset, settings):
        return [], subset(dataset.examples, settings.limit, settings.seed, self.name)

    def template_hash(self, settings):
        return text_hash("Q: {q}\\nA:")

    def requests(self, items, shots, settings):
        return [LoglikelihoodRequest(f"Q: {i.question}\\nA:", " " + i.answers[0]) for i in items]

    def score(self, item, request, answer, settings):
        return float(answer[1])  # greedy decoding gives the answer
"""

ROWS = [
    {"id": f"c{k}", "q": f"capital of country {k}?", "a": w}
    for k, w in enumerate(["Paris", "Rome", "Oslo", "Lima", "Bern", "Riga"])
]


@pytest.fixture
def capitals(pytester):
    (pytester.path / "capitals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    pytester.makepyfile(user_task=USER_TASK)
    return pytester


def test_api_names_are_documented_and_importable():
    assert api.__doc__ and len(api.__all__) >= 20
    for name in api.__all__:
        value = getattr(api, name)
        assert value is not None, name
        if callable(value) and name != "Request":
            assert getattr(value, "__doc__", None), f"pytest_kick.api.{name} has no docstring"


def test_conftest_registered_task_runs_end_to_end_without_a_path(capitals):
    capitals.makeconftest("""
        from user_task import Capitals
        def pytest_kick_tasks(config):
            return [Capitals()]
    """)
    result = capitals.runpytest(*TINY, "--kick-tasks", "capitals", "-v", "--kick-report", "r.json")
    result.stdout.fnmatch_lines(
        [
            "*test_registered.py::test_registered[[]tiny-random-llama-dense[]] *",
            "*test_registered.py::test_registered[[]tiny-random-llama-magnitude-0.5[]] *",
        ]
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()
    report = json.loads((capitals.path / "r.json").read_text())
    dense = [c for c in report["cases"] if c["compressor"] == "dense"]
    assert [c["task"] for c in dense] == ["capitals"] and dense[0]["n"] == len(ROWS)
    assert report["meta"]["tasks"]["capitals"]["floor"] == 0.5


def test_a_users_own_test_of_a_registered_task_replaces_the_generic_one(capitals):
    capitals.makeconftest("""
        from user_task import Capitals
        def pytest_kick_tasks(config):
            return [Capitals()]
    """)
    capitals.makepyfile(
        test_mine="""
        import pytest
        @pytest.mark.kick_task("capitals")
        def test_capitals_my_way(kick_case, kick_baseline):
            assert len(kick_baseline(kick_case).scores) == 6
    """
    )
    result = capitals.runpytest(*TINY, "--kick-tasks", "capitals", "--collect-only", "-q", "test_mine.py")
    out = result.stdout.str()
    assert "test_mine.py::test_capitals_my_way[tiny-random-llama-dense]" in out
    assert "test_registered" not in out
    result = capitals.runpytest(*TINY, "--kick-tasks", "capitals", "test_mine.py", "-k", "dense")
    result.assert_outcomes(passed=1, deselected=1)


def test_a_path_without_the_tasks_test_still_collects_registered_tasks(capitals):
    capitals.makeconftest("""
        from user_task import Capitals
        def pytest_kick_tasks(config):
            return [Capitals()]
    """)
    capitals.makepyfile(test_other="def test_plain():\n    assert True\n")
    result = capitals.runpytest(*TINY, "--kick-tasks", "capitals", "--collect-only", "-q", "test_other.py")
    out = result.stdout.str()
    assert "test_other.py::test_plain" in out
    assert "test_registered.py::test_registered[tiny-random-llama-magnitude-0.5]" in out
    # the bundled suite joins the paths for registered tasks only: a bundled task still needs a test there
    result = capitals.runpytest(*TINY, "--kick-tasks", "capitals,factoid_qa", "--collect-only", "test_other.py")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--kick-tasks selects factoid_qa but no test of it was collected*"])


def test_selected_task_without_any_collected_case_is_a_usage_error(pytester):
    pytester.makepyfile(test_other="def helper():\n    pass\n")  # nothing collected: not exit 5
    result = pytester.runpytest(*TINY, "--kick-tasks", "mmlu", "test_other.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kick-tasks selects mmlu but no test of it was collected*"])


def test_registered_tasks_are_validated_listed_in_errors_and_help(capitals):
    capitals.makeconftest("""
        from user_task import Capitals
        def pytest_kick_tasks(config):
            return [Capitals()]
    """)
    result = capitals.runpytest(*TINY, "--kick-tasks", "capitol")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kick-tasks: unknown task 'capitol'; known: factoid_qa, *, capitals"])
    help_text = " ".join(capitals.runpytest("--help").stdout.str().split())
    assert "Registered here: capitals." in help_text


def test_a_clash_or_a_non_task_names_its_source(pytester):
    pytester.makeconftest("""
        def pytest_kick_tasks(config):
            return ["not a task"]
    """)
    result = pytester.runpytest(*TINY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest_kick_tasks in *conftest.py: gave 'not a task', not a task*"])
    pytester.makeconftest("""
        from pytest_kick.tasks.mmlu import MMLU
        def pytest_kick_tasks(config):
            return [MMLU()]
    """)
    result = pytester.runpytest(*TINY)
    result.stderr.fnmatch_lines(["*a task named 'mmlu' is already registered by the bundled suite; rename one*"])


def test_entry_point_task_package_is_registered(capitals, monkeypatch):
    """An installed task package, simulated: a *.dist-info with entry_points.txt on sys.path."""
    site = capitals.path / "site"
    (site / "capitals_pkg").mkdir(parents=True)
    (site / "capitals_pkg" / "__init__.py").write_text(
        USER_TASK.replace(
            'Path(__file__).parent / "capitals.jsonl"', f'Path({str(capitals.path)!r}) / "capitals.jsonl"'
        )
    )
    info = site / "capitals_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: capitals-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest_kick.tasks]\ncapitals = capitals_pkg:Capitals\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = capitals.runpytest_subprocess(*TINY, "--kick-tasks", "capitals", "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_registered.py::test_registered[tiny-random-llama-dense]" in out, out + result.stderr.str()
    assert "test_registered.py::test_registered[tiny-random-llama-magnitude-0.5]" in out


def test_without_kick_options_no_hook_or_entry_point_is_called(pytester):
    pytester.makeconftest("""
        def pytest_kick_tasks(config):
            raise RuntimeError("called")
    """)
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_registry_is_reset_after_a_session(capitals):
    from pytest_kick import tasks

    capitals.makeconftest("""
        from user_task import Capitals
        def pytest_kick_tasks(config):
            return [Capitals()]
    """)
    capitals.runpytest(*TINY, "--kick-tasks", "capitals", "--collect-only")
    assert "capitals" not in tasks.names() and tasks.registered() == []
