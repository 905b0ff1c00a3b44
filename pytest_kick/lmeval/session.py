"""--kick-from-lmeval DENSE_DIR,COMPRESSED_DIR in a session: read and pair the two runs once, before the options
are validated, and let them choose what the session runs: the ``lmeval`` engine, the lm-eval tasks (registered
through the ``pytest_kick_tasks`` hook, as any session's own tasks are), and a model name for ids and reports
(the dense run's model, unless --kick-model names one). It turns the plugin on by itself."""

from __future__ import annotations

import re

from pytest_kick.errors import KickError
from pytest_kick.lmeval.runs import pair, read_run
from pytest_kick.lmeval.task import FAMILY, LmevalTask

OPTION = "from-lmeval"


class LmevalTasks:
    """A plugin object whose ``pytest_kick_tasks`` gives the paired runs' tasks."""

    def __init__(self, found: list):
        self.found = found

    def pytest_kick_tasks(self, config):
        return list(self.found)


def prepare(values: dict, origins, pluginmanager) -> None:
    """With --kick-from-lmeval, read and pair both runs (a KickError names the field they differ in), register their
    tasks, and fill in what the session then is: engine lmeval, tasks lmeval, the model's name."""
    text = values.get(OPTION)
    if text is None:
        return
    flag = origins(OPTION)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) != 2:
        raise KickError(f"{flag}: give two lm-eval output directories, DENSE_DIR,COMPRESSED_DIR (got {text!r})")
    dense = read_run(origins.path(OPTION, parts[0]), f"{flag} (dense run)")
    compressed = read_run(origins.path(OPTION, parts[1]), f"{flag} (compressed run)")
    found = [LmevalTask(p, dense, compressed) for p in pair(dense, compressed, flag)]
    if values.get("engine") not in (None, "lmeval"):
        raise KickError(f"{flag} gates stored lm-eval runs: it takes no --kick-engine {values['engine']}")
    values["engine"] = "lmeval"
    if values.get("tasks") is None:
        values["tasks"] = FAMILY
    if values.get("model") is None:  # "org/name" names a model without a directory or alias: the dense run's model
        values["model"] = f"lmeval/{re.sub(r'[^A-Za-z0-9._-]+', '-', dense.model_name).strip('-.') or 'model'}"
    pluginmanager.register(LmevalTasks(found), "kick-lmeval")
