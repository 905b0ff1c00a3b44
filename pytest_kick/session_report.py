"""The end-of-session summary: each item's kick_* properties (they travel with xdist reports), the table,
the summary lines, and the JSON / Markdown reports and plots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_kick import fixtures, report_judge, report_markdown, report_recovery, tasks
from pytest_kick import report as kick_report
from pytest_kick.errors import KickError
from pytest_kick.files import atomic_write
from pytest_kick.plot import plot
from pytest_kick.record import CaseRecord
from pytest_kick.versions import package_versions


class SessionReport:
    """Collects each item's kick_* properties (they travel with xdist reports) and prints the table."""

    def __init__(self, config, kick):
        self.config = config
        self.kick = kick
        self.records: list[CaseRecord] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            record = CaseRecord.from_properties(report.user_properties)
            if record:
                record.outcome = report.outcome
                record.nodeid = report.nodeid
                self.records.append(record)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if hasattr(self.config, "workerinput") or self.config.option.collectonly:
            return
        tr = terminalreporter
        tr.section("pytest-kick")
        if self.records:
            tr.write(kick_report.render(self.records, color=tr.hasmarkup))
        else:
            tr.write_line("no kick case ran")
        tr.write_line(kick_report.stat_line(self.kick))
        for line in kick_report.baseline_lines(self.records, os.path.relpath):
            tr.write_line(line)
        for line in kick_report.choices_lines(self.records):
            tr.write_line(line)
        for line in kick_report.saved_lines(self.records):
            tr.write_line(line)
        for line in kick_report.search_lines(self.records):
            tr.write_line(line)
        seen = set()
        for r in self.records:
            compression = r.compression
            if compression and (r.model, r.compressor, r.ratio) not in seen:  # once per variant
                seen.add((r.model, r.compressor, r.ratio))
                tr.write_line(kick_report.compression_line(r.model, compression))
        for line in kick_report.details_lines(self.records):
            tr.write_line(line)
        for line in report_judge.judge_lines(self.records):
            tr.write_line(line)
        for line in report_recovery.recovery_lines(self.records):
            tr.write_line(line)
        sources = sorted({f"{r.task}: {r.data_source}" for r in self.records if r.data_source})
        if sources:
            tr.write_line(f"protocol {self.kick.protocol}; data " + "; ".join(sources))
        meta = self.meta()
        for path, what, write in (
            (self.kick.report, "JSON report", kick_report.write_json),
            (
                self.kick.markdown,
                "Markdown summary",
                lambda records, p, m: atomic_write(p, report_markdown.markdown(records, m)),
            ),
        ):
            if path:
                try:
                    write(self.records, path, meta)
                    tr.write_line(f"{what}: {path}")
                except OSError as err:  # checked at start; a disk that filled up since loses the file, not the run
                    tr.write_line(f"pytest-kick: cannot write the {what} {path}: {err}", red=True)
        if self.kick.plot:
            try:
                for path in plot(self.records, self.kick.plot):
                    tr.write_line(f"plot: {path}")
            except KickError as err:
                tr.write_line(f"pytest-kick: {err}", red=True)

    def task(self, name: str):
        runtime = self.config.stash.get(fixtures.RUNTIME_KEY, None)
        return runtime.task(name) if runtime is not None else tasks.get(name)

    def meta(self) -> dict:
        """What the JSON/Markdown reports say about the run: settings, tasks, environment."""
        import dataclasses
        import platform

        return {
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self.kick).items()},
            "tasks": {
                name: {
                    "version": t.version,
                    "metric": t.metric,
                    "higher_is_better": t.higher_is_better,
                    "floor": t.floor,
                }
                for name, t in ((n, self.task(n)) for n in self.kick.tasks)
            },
            "judge": report_judge.judge_summary(self.records),
            "environment": {"python": platform.python_version(), "platform": platform.platform(), **package_versions()},
            "protocol": self.kick.protocol,
            "stat": kick_report.stat_line(self.kick).removeprefix("verdicts: "),
            "data": "; ".join(sorted({f"{r.task}: {r.data_source}" for r in self.records if r.data_source})),
        }
