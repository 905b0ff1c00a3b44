"""Tell verdicts from errors after a run: exit 0 when every failed test is a "not matching" verdict.

pytest exits 1 both when a compressed model is not matching dense (the gate doing its job) and when
something broke (a model that does not load, a crash in a task). A demo, or a job that tracks verdicts
elsewhere, wants only the second to fail::

    pytest --kick-model ... --junitxml run.xml; python -m pytest_kick.verdicts $? run.xml

reads pytest's exit status and its JUnit XML (every test's outcome, with the ``kick_verdict`` property
the gate records), prints one line, and exits 0 when pytest passed or when each failure is a verdict;
otherwise with pytest's status (1 for failures that are not verdicts, listed one per line).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from pytest_kick.record import PREFIX, Verdict

NOT_MATCHING = Verdict.NOT_MATCHING.value


def classify(junit: Path) -> tuple[int, list[str], list[str]]:
    """(passed or skipped, verdict failures, other problems) from a JUnit XML file; each as test names."""
    cases = ET.parse(junit).getroot().iter("testcase")
    settled, verdicts, problems = 0, [], []
    for case in cases:
        name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
        errors = case.findall("error")
        failures = case.findall("failure")
        verdict = next((p.get("value") for p in case.iter("property") if p.get("name") == PREFIX + "verdict"), None)
        if errors:
            problems.append(f"{name}: error: {errors[0].get('message', '')}".rstrip(": "))
        elif failures and verdict == NOT_MATCHING:
            verdicts.append(name)
        elif failures:
            problems.append(f"{name}: failed: {failures[0].get('message', '')}".rstrip(": "))
        else:
            settled += 1
    return settled, verdicts, problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m pytest_kick.verdicts PYTEST_EXIT_STATUS JUNIT_XML", file=sys.stderr)
        return 4
    status, junit = int(args[0]), Path(args[1])
    if status != 1:  # 0: all passed; 2-5: interrupted, internal or usage error, no tests: pass it on
        return status
    try:
        settled, verdicts, problems = classify(junit)
    except (OSError, ET.ParseError) as err:
        print(f"pytest failed and its JUnit XML {junit} cannot be read ({err}): not only verdicts", file=sys.stderr)
        return status
    for line in problems:
        print(line, file=sys.stderr)
    if problems or not verdicts:
        print(
            f"{len(problems)} failure(s) that are not verdicts (listed above); {len(verdicts)} verdict(s)",
            file=sys.stderr,
        )
        return status
    print(
        f"{len(verdicts)} compressed variant(s) not matching dense, {settled} test(s) passed or skipped: "
        f"the failures are verdicts, not errors"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
