"""How a kick item ends when something goes wrong: a KickError fails only that item with its one-line message
(and, for a registered task, where it was declared), never a traceback; a KickSessionError (any model that
cannot be loaded) ends the whole session once with its message, exit code 2, under xdist too."""

from __future__ import annotations

import functools

import pytest

from pytest_kick import tasks
from pytest_kick.cases import KickCase
from pytest_kick.errors import KickError, KickSessionError


def end_session(session, message: str):
    """Stop the session with one message: a problem that dooms every item is not repeated per item.

    ``session.shouldstop`` travels to the xdist controller, which stops every worker and ends the run as
    interrupted with this message; without xdist, pytest.exit does the same. Exit code 2 either way.
    """
    text = f"pytest-kick: {message}"
    session.shouldstop = text
    worker = hasattr(session.config, "workerinput")
    # a worker must not exit with 2: xdist would read that as a keyboard interrupt and drop the message
    pytest.exit(text, returncode=pytest.ExitCode.TESTS_FAILED if worker else pytest.ExitCode.INTERRUPTED)


def user_errors(request):
    """Show a KickError as its message only; a KickSessionError ends the session (see end_session)."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except KickSessionError as err:
                fatal, message = True, str(err)
            except KickError as err:
                fatal, message = False, str(err) + _declared(args[0] if args else None)
            if fatal:  # outside the except blocks: no chained traceback
                end_session(request.session, message)
            pytest.fail(message, pytrace=False)

        return wrapper

    return decorate


def _declared(case) -> str:
    """Where the user declared a registered task (task file and line, class, hook), for its error messages."""
    where = tasks.location(case.task) if isinstance(case, KickCase) else None
    return "" if where is None else f"\n(task {case.task}, declared at {where[0]}:{where[1]})"


def load_model(runtime, case: KickCase):
    """The case's model, loaded once; a model that cannot be loaded dooms every item of the session."""
    try:
        return runtime.model(case.model)
    except KickSessionError:
        raise
    except KickError as err:
        raise KickSessionError(str(err)) from None
