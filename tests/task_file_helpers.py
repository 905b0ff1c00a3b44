"""Shared constants and fixtures of the declarative task tests (test_task_file*.py)."""

import json

import kick_args
import pytest

TINY = kick_args.MAGNITUDE


MC_YAML = """\
tasks:
  - name: truthy_mc
    type: multiple_choice
    data: truthy.jsonl
    template: "Q: {question}\\nA:"
    choices: choices
    answer: label
"""


def mc_rows():
    """Four items each with 3, 4 and 5 choices; answers given as index, text and letter."""
    rows = []
    for k in range(12):
        n = 3 + k % 3
        choices = [f"option {k}-{c}" for c in range(n)]
        label = [k % n, choices[(k + 1) % n], "ABCDE"[(k + 2) % n]][k % 3]
        rows.append({"question": f"which option is right for question {k}?", "choices": choices, "label": label})
    return rows


@pytest.fixture
def mc_files(tmp_path):
    (tmp_path / "truthy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc_rows()))
    (tmp_path / "tasks.yaml").write_text(MC_YAML)
    return tmp_path
