"""The hooks users and other plugins implement. pytest-kick adds them in ``pytest_addhooks``."""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=False)
def pytest_kick_tasks(config: "pytest.Config") -> list:
    """Return a list of task objects (see :mod:`pytest_kick.api`) to gate in this session.

    Implement it in a ``conftest.py`` at the root of the run (conftest files in sub-directories are read
    after pytest-kick checks ``--kick-tasks``, too late) or in a plugin. Every implementation is called
    once per session, when pytest-kick is on; the tasks of all of them join the bundled ones. A registered
    task is selected like a bundled one (``--kick-tasks mytask``) and gets its test collected without a
    suite file; a test function marked ``@pytest.mark.kick_task("mytask")`` replaces that test.
    """
