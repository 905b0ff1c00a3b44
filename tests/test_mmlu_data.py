"""MMLU data loading: the bundled sample, Hendrycks CSV and JSONL data directories and their errors, the hub."""

import json
from pathlib import Path

import mmlu_helpers
import pytest

from pytest_kick.errors import KickError
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import MMLU, MMLUDataset

offline, one_thread, bundled = mmlu_helpers.offline, mmlu_helpers.one_thread, mmlu_helpers.bundled  # the fixtures


def test_bundled_data_loads_with_provenance(bundled):
    _, dataset, dev = bundled
    assert isinstance(dataset, MMLUDataset)
    assert len(dataset.examples) == 14042 and len(dataset.dev) == 285
    assert all(len(shots) == 5 for shots in dev.values())
    assert dataset.source == "bundled:mmlu/mmlu_test.jsonl+mmlu/mmlu_dev.jsonl"
    assert len(dataset.content_hash) == 64
    first = dataset.examples[0]
    assert first.answers == ("B",) and first.answer_index == 1 and first.choices == ("0", "4", "2", "6")


def write_csv_data(root: Path, subjects=("anatomy", "virology"), rows=3) -> None:
    for split in ("dev", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            lines = [
                f'"{subject} {split} {n}, with a comma\nand a newline?",a{n},b{n},c{n},d{n},{"ABCD"[n % 4]}'
                for n in range(rows if split == "test" else 5)
            ]
            (root / split / f"{subject}_{split}.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["", "data", "mmlu", "mmlu/data"])
def test_hendrycks_csv_data_dir(tmp_path, layout):
    write_csv_data(tmp_path / layout)
    task = MMLU()
    dataset = task.load(Settings(data_dir=tmp_path))
    assert [i.id for i in dataset.examples][:3] == ["mmlu/test/anatomy/0", "mmlu/test/anatomy/1", "mmlu/test/anatomy/2"]
    assert dataset.examples[1].question == "anatomy test 1, with a comma\nand a newline?"
    assert dataset.examples[1].answers == ("B",) and dataset.examples[1].choices == ("a1", "b1", "c1", "d1")
    assert len(dataset.dev) == 10 and dataset.source.startswith("local:")
    _, items = task.split(dataset, Settings(limit=2))
    assert {i.subject for i in items} == {"anatomy", "virology"}


def test_missing_dev_csv_names_the_file(tmp_path):
    write_csv_data(tmp_path)
    (tmp_path / "dev" / "virology_dev.csv").unlink()
    with pytest.raises(KickError, match=r"virology_dev.csv is missing .*data.tar"):
        MMLU().load(Settings(data_dir=tmp_path))


def test_malformed_csv_names_file_and_row(tmp_path):
    write_csv_data(tmp_path)
    (tmp_path / "test" / "anatomy_test.csv").write_text("q?,a,b,c,d,A\nq2?,a,b,c,d\n")
    with pytest.raises(KickError, match=r"anatomy_test.csv:2: expected 6 columns"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "test" / "anatomy_test.csv").write_text("q?,a,b,c,d,E\n")
    with pytest.raises(KickError, match=r"anatomy_test.csv:1: the answer must be a letter A-D"):
        MMLU().load(Settings(data_dir=tmp_path))


def test_jsonl_data_dir_and_its_errors(tmp_path):
    (tmp_path / "mmlu").mkdir()
    record = {"id": "t0", "subject": "anatomy", "question": "q?", "choices": ["a", "b", "c", "d"], "answer": "C"}
    (tmp_path / "mmlu" / "mmlu_test.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(KickError, match=r"mmlu_dev.jsonl is missing"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "mmlu" / "mmlu_dev.jsonl").write_text(json.dumps({**record, "id": "d0"}) + "\n{oops\n")
    with pytest.raises(KickError, match=r"mmlu_dev.jsonl:2: not valid JSON"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "mmlu" / "mmlu_dev.jsonl").write_text(json.dumps({**record, "id": "d0", "choices": ["a"]}) + "\n")
    with pytest.raises(KickError, match=r"mmlu_dev.jsonl record 'd0': choices must be a list of 4 strings"):
        MMLU().load(Settings(data_dir=tmp_path))
    (tmp_path / "mmlu" / "mmlu_dev.jsonl").write_text(json.dumps({**record, "id": "d0"}) + "\n")
    dataset = MMLU().load(Settings(data_dir=tmp_path))
    assert dataset.examples[0].answers == ("C",) and dataset.examples[0].answer_index == 2
    with pytest.raises(KickError, match=r"5 shots asked but the dev split of anatomy has 1"):
        MMLU().split(dataset, Settings())


def test_data_dir_without_mmlu_falls_back_and_names_the_layout_it_takes(tmp_path, monkeypatch):
    import pytest_kick.tasks.mmlu as mmlu

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert MMLU().load(Settings(data_dir=tmp_path)).source.startswith("bundled:")
    assert "data.tar" in mmlu.LOCAL_LAYOUT and "mmlu_test.jsonl" in mmlu.LOCAL_LAYOUT


def test_hub_rows_come_before_the_bundled_sample(monkeypatch):
    import pytest_kick.tasks.mmlu as mmlu

    rows = {
        "test": [{"question": "q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 3}] * 2,
        "dev": [{"question": "s?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 0}],
    }
    monkeypatch.setattr(
        mmlu,
        "hub_rows",
        lambda path, name, split, notify=None: (rows[split], f"hub:{path}/{name}@{split}", f"fp-{split}"),
    )
    dataset = MMLU().load(Settings(data_dir=Path("/nonexistent")))
    assert [i.id for i in dataset.examples] == ["mmlu/test/anatomy/0", "mmlu/test/anatomy/1"]
    assert dataset.examples[0].answers == ("D",) and dataset.dev[0].id == "mmlu/dev/anatomy/0"
    assert dataset.source == "hub:cais/mmlu/all@test+hub:cais/mmlu/all@dev"
