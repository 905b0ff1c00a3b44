"""Tasks from a YAML or TOML file (``--kick-task-file``): the common shapes, with no Python.

A file holds one task (a mapping) or several (``tasks:``, a list of mappings). TruthfulQA MC1 from its
records (``question``, ``best_answer``, ``incorrect_answers``: a list)::

    tasks:
      - name: truthfulqa_mc1
        type: multiple_choice          # or generation, perplexity
        data: truthfulqa.jsonl         # JSONL, CSV or Parquet, relative to this file
        template: "Q: {question}\\nA:"  # fields of each record in braces
        choices: [best_answer, incorrect_answers]  # fields in order: a string is one choice, a list each element
        answer: best_answer            # the correct choice: a choice field, or its label, text, 0-based index, letter
        shots: 0

``choices`` may also name one list field (``choices: choices``). Few-shot and lettered choices
(``examples/mmlu.yaml`` reproduces the bundled MMLU task this way): ``labels`` lists the choices as ``A. text``
lines (``{choices}`` in the template) and scores the label; ``shuffle: true`` reorders each item's choices
(seeded per item), so the correct one is not always ``A``; ``header`` opens every prompt; ``shots_from`` takes
the shots from another file, ``shots_by`` those with the item's value of a field.

Every mistake is a KickError of one line naming the file, the line and the key; a record whose field is not
what the task reads from it (a list where text is needed, a string where a list is) names the data file, its
line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.tasks.base import Settings
from pytest_kick.tasks.choice import MultipleChoice
from pytest_kick.tasks.prompts import template_problem
from pytest_kick.tasks.simple import METRICS, Generation, TextPerplexity

COMMON = {"name": str, "type": str, "data": str, "version": (str, int, float)}
FEW_SHOT = {"template": str, "header": str, "shots": int, "shots_from": str, "shots_by": str, "id": str}
SHAPES = {
    "multiple_choice": (
        MultipleChoice,
        {**FEW_SHOT, "choices": (str, list), "answer": str, "labels": (str, list), "shuffle": bool},
    ),
    "generation": (Generation, {**FEW_SHOT, "answer": str, "metric": str, "max_new_tokens": int, "stop": (str, list)}),
    "perplexity": (TextPerplexity, {"window": int}),
}
REQUIRED = ("name", "type", "data")


def load(path: Path) -> list:
    """The tasks a task file declares, their data files read and checked."""
    path = Path(path)
    if not path.is_file():
        raise KickError(f"{path}: no such task file")
    if path.suffix in (".yaml", ".yml"):
        entries = _yaml_entries(path)
    elif path.suffix == ".toml":
        entries = _toml_entries(path)
    else:
        raise KickError(f"{path}: a task file is .yaml, .yml or .toml")
    found = [_task(path, values, lines, start) for values, lines, start in entries]
    names = [t.name for t in found]
    for name in names:
        if names.count(name) > 1:
            raise KickError(f"{path}: task name {name!r} is declared twice")
    return found


def _task(path: Path, values: dict, lines: dict, start: int):
    def fail(key: str, message: str):
        raise KickError(f"{path}:{lines.get(key, start)}: {key}: {message}")

    for key in REQUIRED:
        if key not in values:
            raise KickError(f"{path}:{start}: {key}: missing (a task needs {', '.join(REQUIRED)})")
    shape = values["type"]
    if shape not in SHAPES:
        fail("type", f"{shape!r} is not one of {', '.join(SHAPES)}")
    cls, keys = SHAPES[shape]
    allowed = {**COMMON, **keys}
    for key, value in values.items():
        if key not in allowed:
            fail(key, f"unknown key for a {shape} task; known: {', '.join(allowed)}")
        kind = allowed[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            fail(key, f"{value!r} is not {_kind_name(kind)}")
    name = values["name"]
    if not re.fullmatch(r"[A-Za-z_][\w.-]*(:[\w.-]+)?", name):
        fail("name", f"{name!r} is not a task name (letters, digits, _ . -; optionally family:variant)")
    if isinstance(values.get("choices"), list) and not all(isinstance(c, str) for c in values["choices"]):
        fail("choices", "a list of field names")
    if isinstance(values.get("labels"), list) and not all(isinstance(c, str) for c in values["labels"]):
        fail("labels", "a list of labels (strings) or a string of one-character labels")
    if "labels" in values and len(set(values["labels"])) != len(values["labels"]):
        fail("labels", f"{values['labels']!r}: labels must be distinct")
    for key in ("template", "header"):
        problem = template_problem(values.get(key, ""))
        if problem:
            fail(key, problem)
    if "shots_by" in values and "shots_from" not in values:
        fail("shots_by", "needs shots_from (the file the shots come from)")
    if values.get("metric", "contains") not in METRICS:
        fail("metric", f"{values['metric']!r} is not one of {', '.join(METRICS)}")
    for key in ("shots", "max_new_tokens", "window"):
        if key in values and values[key] < (0 if key == "shots" else 1):
            fail(key, f"{values[key]} is too small")
    files = {}
    for key in ("data", "shots_from"):
        if key in values:
            files[key] = Path(values[key]).expanduser()
            files[key] = files[key] if files[key].is_absolute() else path.parent / files[key]
            if not files[key].is_file():
                fail(key, f"no such file {files[key]}")
    data = files["data"]
    options = {k: v for k, v in values.items() if k not in ("name", "type", "data", "id")}
    if "shots_from" in files:
        options["shots_from"] = files["shots_from"]
    options["version"] = str(values.get("version", "1"))
    if "id" in values:
        options["id_field"] = values["id"]
    if isinstance(options.get("stop"), str):
        options["stop"] = (options["stop"],)
    where = f"{path}:{start}"
    try:
        task = cls(name, data, where=where, **options)
        task.split(task.load(Settings()), Settings())  # data problems now, not in the middle of the run
    except KickError as err:
        message = str(err)
        named = any(str(f) in message for f in files.values())
        raise KickError(message if named else f"{where}: {message}") from None
    return task


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a whole number", float: "a number", list: "a list", bool: "true or false"}
    return " or ".join(names[k] for k in kinds)


def _yaml_entries(path: Path) -> list[tuple[dict, dict, int]]:
    """(values, line of each key, line of the mapping) per task, lines 1-based (yaml.compose keeps them)."""
    import yaml

    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
        if root is None:
            raise KickError(f"{path}:1: the task file is empty")
        if isinstance(root, yaml.MappingNode) and any(k.value == "tasks" for k, _ in root.value):
            if len(root.value) != 1:
                other = next(k for k, _ in root.value if k.value != "tasks")
                raise KickError(f"{path}:{other.start_mark.line + 1}: {other.value}: unknown key beside tasks")
            node = root.value[0][1]
            if not isinstance(node, yaml.SequenceNode) or not node.value:
                raise KickError(f"{path}:{node.start_mark.line + 1}: tasks: must be a list of task mappings")
            nodes = node.value
        else:
            nodes = [root]
        entries = []
        for node in nodes:
            if not isinstance(node, yaml.MappingNode):
                raise KickError(f"{path}:{node.start_mark.line + 1}: tasks: each task must be a mapping of keys")
            values, lines = {}, {}
            for key, value in node.value:
                values[key.value] = loader.construct_object(value, deep=True)
                lines[key.value] = key.start_mark.line + 1
            entries.append((values, lines, node.start_mark.line + 1))
        return entries
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise KickError(f"{path}:{line}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()


def _toml_entries(path: Path) -> list[tuple[dict, dict, int]]:
    """As _yaml_entries for TOML: ``[[tasks]]`` tables or one top-level table; lines found by key position."""
    import tomllib

    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = re.search(r"line (\d+)", str(err))
        raise KickError(
            f"{path}:{line.group(1) if line else 1}: not valid TOML ({str(err).split(' (at')[0]})"
        ) from None
    rows = text.splitlines()
    headers = [n for n, row in enumerate(rows) if re.match(r"\s*\[\[\s*tasks\s*\]\]", row)]
    tables = data["tasks"] if "tasks" in data else [data]
    if not isinstance(tables, list) or not tables:
        raise KickError(f"{path}:1: tasks: must be an array of tables ([[tasks]])")
    bounds = list(zip(headers, headers[1:] + [len(rows)])) if "tasks" in data else [(0, len(rows))]
    entries = []
    for values, (first, last) in zip(tables, bounds):
        lines = {}
        for key in values:
            for n in range(first, last):
                if re.match(rf"\s*{re.escape(key)}\s*=", rows[n]):
                    lines[key] = n + 1
                    break
        entries.append((values, lines, first + 1))
    return entries
