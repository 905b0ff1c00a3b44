"""Progress where stderr is not a terminal (a CI log): plain lines now and then, never a bar."""

from types import SimpleNamespace

from pytest_kick import terminal
from pytest_kick.terminal import TerminalUI


def ui(verbose=0, worker=None):
    config = SimpleNamespace(
        option=SimpleNamespace(verbose=verbose), pluginmanager=SimpleNamespace(getplugin=lambda name: None)
    )
    return TerminalUI(config, worker)


def clock(monkeypatch, times):
    ticks = iter(times)
    monkeypatch.setattr(terminal.time, "monotonic", lambda: next(ticks))


def test_a_log_gets_a_line_per_interval_with_counts_and_elapsed_time(monkeypatch, capsys):
    clock(monkeypatch, [0.0, 10.0, 61.0, 90.0, 125.0])
    with ui().progress("mmlu qwen dense") as advance:
        advance(10, 100)  # 10 s: too soon
        advance(40, 100)  # 61 s: a line
        advance(50, 100)  # 90 s: 29 s after the last line
        advance(90, 100)  # 125 s: a line
    err = capsys.readouterr().err
    assert "[kick] mmlu qwen dense: 40/100 (1m01s)" in err
    assert "[kick] mmlu qwen dense: 90/100 (2m05s)" in err
    assert "50/100" not in err and "10/100" not in err


def test_nothing_for_the_last_step_unknown_totals_quiet_runs_or_workers(monkeypatch, capsys):
    clock(monkeypatch, [0.0, 100.0, 200.0])
    with ui().progress("x") as advance:
        advance(100, 100)  # done: the result line follows anyway
        advance(5, 0)  # no total yet
    for quiet in (ui(verbose=-1), ui(worker="gw0")):
        clock(monkeypatch, [0.0, 100.0])
        with quiet.progress("x") as advance:
            advance(1, 2)
    assert capsys.readouterr().err == ""
