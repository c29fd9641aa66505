"""The one base of Hubstead's expected errors.

A ``HubsteadError`` is something the person at the keyboard can fix (a bad name, a
setting, a hub that does not answer): its message says what, in one line, and the CLI
prints it as ``hubstead: error: ...``. Any other exception is a bug and keeps its
traceback. This module imports nothing, so every layer can use it.
"""


class HubsteadError(Exception):
    """An expected, user-facing error; the message says what to fix."""
