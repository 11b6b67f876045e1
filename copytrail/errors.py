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
