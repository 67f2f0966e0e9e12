"""The one exception type for user mistakes.

Anything the user can fix (a bad flag, a missing file, a bad key in a TOML) raises
``UserError``; the CLI prints its one-line message on stderr and exits with code 2, without a
traceback (DESIGN §1).
"""


class UserError(Exception):
    """A mistake the user can fix. ``str(error)`` is the whole one-line message."""

    exit_code = 2
