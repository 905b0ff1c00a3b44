"""examples/mmlu.yaml, a task file of 14 lines, reproduces the bundled mmlu task: the same prompts (header, lettered
choices, 5 shots from the subject's dev questions, shots dropped until the prompt fits), the same predictions and
the same per-item scores, when both are pointed at the same MMLU items."""

import json
from pathlib import Path

import pytest

from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.tasks import declarative
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.mmlu import MMLU
from pytest_kick.tasks.mmlu_data import MMLUDataset

EXAMPLE = Path(__file__).parents[1] / "examples" / "mmlu.yaml"
BUNDLED = Path(__file__).parents[1] / "fixtures" / "mmlu"


def mmlu_items(limit: int):
    """The bundled mmlu task, its shots and its stratified subset (one question per subject from 57 on)."""
    task = MMLU()
    return (task, *task.split(task.load(Settings()), Settings(limit=limit)))


def write_data(root: Path, ids: set) -> Path:
    """A --kick-data-dir holding only the chosen test questions (and every dev question), and the example task
    file pointed at the same two files."""
    (root / "mmlu").mkdir(parents=True)
    lines = [ln for ln in (BUNDLED / "mmlu_test.jsonl").read_text().split("\n") if ln.strip()]  # \x85 is no newline
    (root / "mmlu" / "mmlu_test.jsonl").write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["id"] in ids))
    (root / "mmlu" / "mmlu_dev.jsonl").write_text((BUNDLED / "mmlu_dev.jsonl").read_text())
    text = EXAMPLE.read_text().replace("../fixtures/mmlu/", "mmlu/")
    assert text.count("mmlu/mmlu_") == 2
    (root / "mmlu.yaml").write_text(text)
    return root / "mmlu.yaml"


def both(engine, limit: int):
    """(bundled requests, scores, outputs), (YAML requests, scores, outputs) on the same items and engine; and what
    fitting the bundled task's prompts dropped."""
    task, mmlu_shots, items = mmlu_items(limit)
    [yaml_task] = declarative.load(EXAMPLE)
    by_id = {i.id: i for i in yaml_task.load(Settings()).examples}
    same = [by_id[i.id] for i in items]
    shots, _ = yaml_task.split(MMLUDataset(tuple(same), "", ""), Settings())
    found = []
    for t, its, sh in ((task, items, mmlu_shots), (yaml_task, same, shots)):
        asked = []

        class Recording(Runner):
            def __call__(self, requests):
                asked.extend(requests)
                return super().__call__(requests)

        scores, outputs = t.evaluate(its, sh, Settings(), Recording(engine))
        found.append((asked, scores, outputs))
    return task.fit(items, mmlu_shots, Settings(), Runner(engine)), found


def test_example_is_a_short_task_file():
    assert 10 <= len(EXAMPLE.read_text().splitlines()) <= 15


def test_yaml_and_bundled_mmlu_ask_the_same_requests_and_agree_item_for_item(tiny):
    model, tokenizer = tiny
    engine = LocalEngine(model, tokenizer, "cpu", batch_size=16)  # 1,024-token context: long prompts lose shots
    fitted, ((asked, scores, outputs), (yaml_asked, yaml_scores, yaml_outputs)) = both(engine, 60)
    assert len(asked) == 4 * 60
    assert yaml_asked == asked  # every prompt and continuation, character for character
    assert yaml_outputs == outputs and yaml_scores == scores
    assert fitted.shots_dropped > 0  # the fitting rule was exercised, not bypassed


def test_yaml_and_bundled_mmlu_agree_in_a_pytest_session(pytester):
    """What a user runs: both tasks on the same items, their dense baselines written as files, item for item."""
    _, _, items = mmlu_items(20)
    task_file = write_data(pytester.path / "data", {i.id for i in items})
    result = pytester.runpytest(
        "--kick-model",
        "tiny-random-llama",
        "--kick-tasks",
        "mmlu,mmlu_yaml",
        "--kick-task-file",
        str(task_file),
        "--kick-data-dir",
        "data",
        "--kick-baseline-dir",
        "baselines",
        "--kick-ratio",
        "0.5",
        "-k",
        "dense",
        "-p",
        "no:cacheprovider",
    )
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    bundled, mine = (
        json.loads((pytester.path / "baselines" / "tiny-random-llama" / f"{name}.json").read_text())["result"]
        for name in ("mmlu", "mmlu_yaml")
    )
    assert len(bundled["item_ids"]) == 20
    assert mine["item_ids"] == bundled["item_ids"]
    assert mine["outputs"] == bundled["outputs"] and mine["scores"] == bundled["scores"]


@pytest.mark.slow
def test_yaml_and_bundled_mmlu_agree_on_smollm2(smollm2):
    engine = LocalEngine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=8)
    _, ((asked, scores, outputs), (yaml_asked, yaml_scores, yaml_outputs)) = both(engine, 5)
    assert yaml_asked == asked
    assert yaml_outputs == outputs and yaml_scores == scores
    print(
        f"smollm2-135m, 5 MMLU items: {sum(a == b for a, b in zip(outputs, yaml_outputs))}/5 same predictions, "
        f"accuracy bundled {sum(scores) / 5:.2f}, YAML {sum(yaml_scores) / 5:.2f}"
    )
