"""examples/mmlu_subjects.py: the copy of the bundled MMLU that make demo (and a user) reads with --kick-data-dir."""

import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "mmlu_subjects.py"


def run(monkeypatch, *argv) -> int:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    with pytest.raises(SystemExit) as ended:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return ended.value.code


def test_writes_the_first_questions_of_each_subject_and_all_their_dev_shots(monkeypatch, tmp_path, capsys):
    assert run(monkeypatch, str(tmp_path), "marketing", "anatomy", "--per-subject", "3") == 0
    from pytest_kick.tasks.data import bundled_dir, read_jsonl

    test, dev = read_jsonl(tmp_path / "mmlu" / "mmlu_test.jsonl"), read_jsonl(tmp_path / "mmlu" / "mmlu_dev.jsonl")
    bundled = read_jsonl(bundled_dir() / "mmlu" / "mmlu_test.jsonl")
    for subject in ("marketing", "anatomy"):
        assert [r for r in test if r["subject"] == subject] == [r for r in bundled if r["subject"] == subject][:3]
        assert len([r for r in dev if r["subject"] == subject]) == 5
    assert {r["subject"] for r in test} == {r["subject"] for r in dev} == {"marketing", "anatomy"}
    assert "6 test questions" in capsys.readouterr().out


def test_the_mmlu_task_reads_the_copy(monkeypatch, tmp_path):
    assert run(monkeypatch, str(tmp_path), "marketing", "--per-subject", "4") == 0
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.mmlu import MMLU

    task = MMLU()
    settings = Settings(data_dir=str(tmp_path))
    _, items = task.split(task.load(settings), settings)
    assert len(items) == 4 and {i.subject for i in items} == {"marketing"}


def test_an_unknown_subject_is_refused_with_the_list(monkeypatch, tmp_path, capsys):
    assert run(monkeypatch, str(tmp_path), "marketing", "astrology") == 2
    err = capsys.readouterr().err
    assert "unknown MMLU subject(s) astrology" in err and "world_religions" in err
    assert not (tmp_path / "mmlu").exists()


def test_a_per_subject_count_below_one_is_refused(monkeypatch, tmp_path, capsys):
    assert run(monkeypatch, str(tmp_path), "marketing", "--per-subject", "0") == 2
    assert "--per-subject must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (tmp_path / "mmlu").exists()
