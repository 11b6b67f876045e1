"""Errors a user can act on. Each message says what went wrong and what to do next."""


class CopytrailError(Exception):
    """Base class; the CLI prints the message and exits with `exit_code`."""

    exit_code = 2


class LibraryNotFound(CopytrailError):
    pass


class NotFound(CopytrailError):
    pass


class Conflict(CopytrailError):
    pass


class InvalidInput(CopytrailError):
    pass


class LimitExceeded(CopytrailError):
    """A request would cost more than its budget (time, work or memory); the message says
    which limit fired and how to stay under it."""


class Cancelled(CopytrailError):
    """The caller went away (an HTTP client disconnected); the work was stopped."""
