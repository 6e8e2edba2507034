"""The one base of the project's own errors: a message a person can act on, a stable code,
and the HTTP status the error has when a client is told about it.

It lives here, below the service, so that the index's errors (an unusable index, a failed
build, an unreadable corpus) and the service's share it: the CLI prints any of them as one
line instead of a traceback, and the service renders the ones meant for clients through one
function into one JSON shape (``service/errors.py``).

What an error sends beside ``code`` and ``message`` is a typed attribute of its class
(``retry_after: int``), never a loose dict: a reader gets a checked type, and the JSON
schema the service declares (``ErrorResponse``) names every such field.
"""

from __future__ import annotations


class PapersearchError(Exception):
    """Raised with a message that says what went wrong and what to do about it."""

    # Class attributes, fixed per kind of error; an instance may narrow ``status`` where one
    # class stands for several (an HTTP refusal the web framework raised itself).
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer needs beside the body, e.g. ``Retry-After``."""
        return {}
