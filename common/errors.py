"""The one exception type for user mistakes.

A `UserError` is a click exception: the CLI prints `Error: <message>` on one
line and exits with status 1, without a traceback. Tracebacks are for bugs.
"""

import click


class UserError(click.ClickException):
    """A mistake in the user's input: a bad file, line, option value or model dir.

    The message names what is wrong and where, e.g.
    `UserError("data/train.tsv:12: expected 2 tab-separated columns, got 1")`.
    """

    exit_code = 1
