"""The package's exceptions.

Errors that become HTTP answers also subclass the matching werkzeug exception,
so a host app can handle them with its own ``errorhandler`` if it wants to.
"""

from __future__ import annotations

from typing import Any

from click import ClickException
from werkzeug.exceptions import BadRequest, ServiceUnavailable


class AutotaskIlertError(Exception):
    """Base class of everything this package raises."""


class ConfigurationError(AutotaskIlertError, ValueError, ClickException):
    """The configuration cannot work; raised by ``init_app``, never at request time.

    Also a click exception: ``flask ...`` loads the app (and so runs
    ``init_app``) before any command, ``--help`` included, and click prints one
    ``Error: ...`` line for it instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        ClickException.__init__(self, message)  # ValueError's __init__ would not call it


class StoreUnavailable(AutotaskIlertError, ServiceUnavailable):
    """Redis did not answer, so the bridge cannot say the request was recorded.

    Usually nothing was (the connection was refused), but a Redis timeout after
    the script ran also lands here, and then it was. Sending the same request
    again is safe either way: a repeated callout or webhook changes nothing.
    """

    retry_after = 5

    def __init__(self, reason: str = "") -> None:
        super().__init__(
            "The alert store is unavailable; the request may not have been recorded. "
            "Sending it again is safe. Retry later."
        )
        self.reason = reason


class InvalidPayload(AutotaskIlertError, BadRequest):
    """A body that is not a valid callout or webhook; ``errors`` says which fields."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}
