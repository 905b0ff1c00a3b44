"""The one exception type a user sees as a plain message instead of a traceback."""


class KickError(Exception):
    """A problem the user can act on (bad input, missing data, corrupt cache, unreachable hub).

    The message is shown as is, on one line where possible; it names the thing that is wrong and
    what to do about it.
    """


class KickWarning(UserWarning):
    """Something a user should know that does not invalidate the verdict (e.g. a baseline file made with
    other package versions)."""


class KickSessionError(KickError):
    """A KickError that dooms every item of the session (a model that cannot be loaded, an unusable cache
    dir): the plugin reports it once and stops the session, instead of failing each item with it."""
