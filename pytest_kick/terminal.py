"""What the runtime tells a person on the terminal: messages and progress bars, around pytest's capture.
Silent in xdist workers (the controller's terminal is the only one a person sees)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager, nullcontext

LOG_EVERY = 60.0  # seconds between progress lines when stderr is not a terminal


class TerminalUI:
    """Messages and progress bars on the terminal, around pytest's output capture. Silent in xdist workers."""

    def __init__(self, config, worker: str | None):
        self.config = config
        self.worker = worker

    def _uncaptured(self):
        capman = self.config.pluginmanager.getplugin("capturemanager")
        return capman.global_and_fixture_disabled() if capman else nullcontext()

    def message(self, text: str) -> None:
        if self.worker or self.config.option.verbose < 0:
            return
        with self._uncaptured():
            sys.stderr.write(f"\n[kick] {text}\n")
            sys.stderr.flush()

    @contextmanager
    def progress(self, description: str):
        with self._uncaptured():  # while capturing, even fd 2 points at pytest's capture file
            interactive = sys.stderr.isatty()
        if self.worker:
            yield lambda done, total: None
            return
        if not interactive:  # a CI log: a plain line now and then, so a long evaluation is seen to move
            yield self._log_lines(description)
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with (
            self._uncaptured(),
            Progress(
                TextColumn("kick: {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            ) as bar,
        ):
            task = bar.add_task(description, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    def _log_lines(self, description: str):
        """A progress callback for a non-interactive stderr: one ``[kick] … done/total`` line at most every
        LOG_EVERY seconds (nothing for work that ends sooner), silent under ``-q``."""
        start = last = time.monotonic()

        def advance(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < LOG_EVERY or not total or done >= total:
                return
            last = now
            minutes, seconds = divmod(int(now - start), 60)
            self.message(f"{description}: {done}/{total} ({minutes}m{seconds:02d}s)")

        return advance
