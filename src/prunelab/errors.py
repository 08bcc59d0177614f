"""The one exception type users see for bad input.

`UserError` is a `ValueError` so library callers can catch the standard type;
the CLI turns it into `error: <message>` and exit code 2, the web API into a
4xx. Messages say what was wrong and how to fix it.
"""


class UserError(ValueError):
    """Bad input from the user: a one-line message saying what to change."""
