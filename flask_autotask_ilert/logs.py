"""One log line per callout, per webhook and per delivery outcome.

The library formats the *message* and nothing else: handlers, levels and
destinations are the host app's, and the package logger keeps only its
NullHandler. ``LOG_FORMAT`` picks how the message is spelled:

- ``text``: ``callout request_id=4b1f... source=default ticket=7865 status="In Progress" ...``
- ``json``: ``{"event":"callout","request_id":"4b1f...","source":"default",...}``

The same fields also ride on the record as ``record.autotask_ilert`` (a dict),
for hosts whose own JSON formatter would rather take them as data.

The request id ties the lines of one ticket change together: the callout or
webhook line, and later the delivery lines of the event it queued (the id
travels inside the queued event).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from .http import truncate

logger = logging.getLogger("flask_autotask_ilert")

REQUEST_ID_HEADER = "X-Request-Id"
#: Ids a proxy may send (UUIDs, trace ids, "Root=1-..."): short and without spaces,
#: quotes or control characters, so they can be logged and echoed as they are.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:=+/@-]{1,128}$")
#: Values written without quotes in text lines; anything else is JSON-quoted, which
#: also keeps a status label with a newline from forging a second line.
_BARE = re.compile(r"^[A-Za-z0-9._:/@+>-]+$")
MAX_VALUE_LENGTH = 200

TEXT = "text"
JSON = "json"


def request_id(given: str | None) -> str:
    """The caller's request id when it is safe to log and echo; a fresh one otherwise."""
    if given and _SANE_ID.match(given):
        return given
    return uuid.uuid4().hex


def _clean(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, 1)
    return truncate(str(value), MAX_VALUE_LENGTH)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value if _BARE.match(value) else json.dumps(value)


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that have a value, cleaned for one line."""
    return {key: _clean(value) for key, value in fields.items() if value is not None}


def _format(values: Mapping[str, Any], event: str, log_format: str) -> str:
    if log_format == JSON:
        return json.dumps({"event": event, **values}, separators=(",", ":"))
    return " ".join([event, *(f"{key}={_text_value(value)}" for key, value in values.items())])


def emit(
    level: int, event: str, fields: Mapping[str, Any], log_format: str = TEXT,
    target: logging.Logger = logger,
) -> None:
    """Write one line; formatting costs nothing when the level is off."""
    if not target.isEnabledFor(level):
        return
    data = _present(fields)
    target.log(level, "%s", _format(data, event, log_format),
               extra={"autotask_ilert": {"event": event, **data}})
