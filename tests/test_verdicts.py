"""`python -m pytest_kick.verdicts STATUS JUNIT`: exit 0 only when every failure is a "not matching" verdict.

The JUnit files come from real pytest runs (pytester), so the check reads what pytest really writes.
"""

import pytest

from pytest_kick.verdicts import main

VERDICT = """
import pytest

def test_matching(record_property):
    record_property("kick_verdict", "matching")

def test_not_matching(record_property):
    record_property("kick_verdict", "not matching")
    pytest.fail("mmlu: magnitude@0.50 is not matching dense", pytrace=False)
"""


def run(pytester, source: str) -> tuple[int, str]:
    pytester.makepyfile(test_cases=source)
    result = pytester.runpytest("--junitxml", "run.xml", "-p", "no:cacheprovider")
    return int(result.ret), str(pytester.path / "run.xml")


def test_verdict_failures_only_exit_zero(pytester, capsys):
    status, junit = run(pytester, VERDICT)
    assert status == 1
    assert main([str(status), junit]) == 0
    assert "1 compressed variant(s) not matching dense, 1 test(s) passed or skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "broken, shown",
    [
        ("def test_crash():\n    raise RuntimeError('model did not load')\n", "test_crash: failed: RuntimeError"),
        (
            "import pytest\n\n@pytest.fixture\ndef model():\n    raise OSError('no weights')\n\n"
            "def test_setup(model):\n    pass\n",
            "test_setup: error",
        ),
        (
            "def test_other_failure(record_property):\n    record_property('kick_verdict', 'sane')\n    assert 0\n",
            "test_other_failure: failed",
        ),
    ],
)
def test_any_other_failure_keeps_pytests_status_and_is_named(pytester, capsys, broken, shown):
    status, junit = run(pytester, VERDICT + "\n\n" + broken)
    assert status == 1
    assert main([str(status), junit]) == 1
    err = capsys.readouterr().err
    assert shown in err
    assert "1 failure(s) that are not verdicts" in err


def test_other_statuses_pass_through_and_a_missing_report_is_not_verdicts(tmp_path, capsys):
    assert main(["0", str(tmp_path / "none.xml")]) == 0
    assert main(["2", str(tmp_path / "none.xml")]) == 2  # interrupted (e.g. a collection error)
    assert main(["1", str(tmp_path / "none.xml")]) == 1
    assert "cannot be read" in capsys.readouterr().err
    assert main(["x"]) == 4
