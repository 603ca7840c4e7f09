"""The one error type a user can cause, printed without a traceback."""


class TfdockError(Exception):
    """A problem the user can fix; its message says what is wrong and what to do."""

    exit_code = 2
    """What the CLI exits with after printing the message."""
