"""The public names a user's task needs. Import from here, nothing else is promised to stay put.

A task is any object with the attributes and methods of :class:`Task` (a Protocol: no base class needed):
``load`` reads its data into a :class:`Dataset`, ``split`` picks in-context shots and the evaluated items,
``evaluate`` turns items into requests (:class:`GenerationRequest`, :class:`LoglikelihoodRequest`,
:class:`RollingRequest`), has the ``run`` callable it is given answer them, and returns one score and one
output text per item. Items are any objects with ``id``, ``question`` and ``answers`` (:class:`Example`).
A task that asks one request per item inherits :class:`OneRequestPerItem` and writes ``requests`` and
``score`` only.

The common shapes come ready-made: :class:`MultipleChoice` (log-likelihood over any number of choices, optionally
lettered, with few-shot from another file grouped by a field: ``examples/mmlu.yaml`` is MMLU this way),
:class:`Generation` (exact match, containment or ROUGE-L), :class:`TextPerplexity`.

Register tasks for a session with the ``pytest_kick_tasks(config)`` hook (in a conftest.py or a plugin),
the ``pytest_kick.tasks`` entry-point group (an installed package), or a task file (``--kick-task-file``).

Data helpers: :func:`read_jsonl` (records, errors naming file and line), :func:`read_records` (JSONL, CSV or
Parquet, with line numbers), :func:`subset` (deterministic seeded subset), :func:`split_shots` (seeded shots, then
the subset of the rest), :func:`file_hash` / :func:`text_hash` (for ``Dataset.content_hash`` and
``template_hash``), :func:`normalize` / :func:`contains_answer` (SQuAD-style answer matching).
Raise :class:`KickError` for bad input: pytest-kick shows its message as is.
"""

from __future__ import annotations

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, json_hash, text_hash
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from pytest_kick.tasks.base import Dataset, Example, OneRequestPerItem, Request, Settings, Task
from pytest_kick.tasks.choice import MultipleChoice
from pytest_kick.tasks.data import read_jsonl, split_shots, subset
from pytest_kick.tasks.file_task import ChoiceItem, TextItem
from pytest_kick.tasks.normalize import contains_answer, normalize
from pytest_kick.tasks.records import read_records
from pytest_kick.tasks.simple import Generation, TextPerplexity

__all__ = [
    "Task",
    "OneRequestPerItem",
    "Example",
    "Dataset",
    "Settings",
    "Request",
    "GenerationRequest",
    "LoglikelihoodRequest",
    "RollingRequest",
    "MultipleChoice",
    "Generation",
    "TextPerplexity",
    "ChoiceItem",
    "TextItem",
    "read_jsonl",
    "read_records",
    "subset",
    "split_shots",
    "file_hash",
    "text_hash",
    "json_hash",
    "normalize",
    "contains_answer",
    "KickError",
]
