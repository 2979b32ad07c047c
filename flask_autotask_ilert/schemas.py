"""marshmallow schemas for every inbound body.

Written for marshmallow 3.20+ and 4.x alike: ``unknown = EXCLUDE``,
``load_default``, validators that raise, no schema context.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

#: The content types of inbound bodies: what Autotask's callout sends, and JSON.
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
#: Ticket ids beyond this are not Autotask ids, and would lose precision in JSON tools.
MAX_TICKET_ID = 2**53 - 1
#: Unknown callout keys are kept for the record (never trusted); bounded so a body cannot bloat Redis.
MAX_EXTRA_KEYS = 16
MAX_EXTRA_CHARS = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Matched against the stripped text (so no leading or trailing ``\s*``), whole. No two
#: neighbouring parts can match the same character (digits, then spaces, then ``Z``, ``+`` or
#: ``-``), so a near miss is given up after one pass instead of being retried at every split
#: of a long run of spaces: linear time for any input. The last alternative is a ``+``
#: offset sent without form encoding, which arrives as a space (``... 04:00:00``).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,](\d+))?"
    r"(?:\s*(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)|\s+(\d{2}:\d{2}(?::\d{2})?))?",
    re.IGNORECASE,
)


def parse_timestamp(value: object) -> datetime | None:
    """Autotask's timestamps, leniently: 7-8 fraction digits, offsets with seconds.

    Anything unreadable is None, never an error: a callout is not rejected for
    an odd timestamp. No offset means UTC.
    """
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.fullmatch(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset, plus_offset = match.groups()
    if plus_offset:
        offset = "+" + plus_offset
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros,
            tzinfo=_parse_offset(offset),
        )
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


@functools.lru_cache(maxsize=256)
def _parse_offset(offset: str | None) -> timezone:
    """Cached: a tenant sends one or two offsets, and a timezone is immutable."""
    if not offset or offset.upper() == "Z":
        return timezone.utc
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes, seconds = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes, seconds=seconds))


def to_micros(moment: datetime | None) -> int | None:
    """Integer microseconds since the epoch: what the store compares to spot stale callouts."""
    if moment is None:
        return None
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC instant of a time the store holds (to_micros' inverse)."""
    return _EPOCH + timedelta(microseconds=micros)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


@dataclass(frozen=True)
class Callout:
    """One Extension Callout, validated. Only these fields drive behaviour."""

    ticket_id: int
    status: str
    number: str | None = None
    domain: str | None = None
    created: datetime | None = None
    last_activity: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def last_activity_us(self) -> int | None:
        return to_micros(self.last_activity)

    def record(self) -> dict[str, Any]:
        """What the queued event keeps of the callout (enough to page without Autotask)."""
        record: dict[str, Any] = {
            "number": self.number,
            "status": self.status,
            "domain": self.domain,
            "last_activity": self.last_activity.isoformat() if self.last_activity else None,
        }
        if self.extra:
            record["extra"] = self.extra
        return record


class CalloutSchema(Schema):
    """The Name Value Pair (or JSON) body Autotask's Extension Callout sends."""

    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_TICKET_ID)
    )
    status = fields.String(required=True, validate=[validate.Length(max=128), _not_blank])
    number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    domain = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    created_datetime = fields.Raw(load_default=None, allow_none=True)
    last_activity_datetime = fields.Raw(load_default=None, allow_none=True)

    @pre_load
    def _ids_from_text(self, data: Any, **_: Any) -> Any:
        """Form values are text; JSON may carry a number. Booleans and floats are not ids."""
        if not isinstance(data, dict):
            return data
        value = data.get("id")
        if isinstance(value, bool | float):
            raise ValidationError("Not a valid ticket id.", field_name="id")
        if isinstance(value, str):
            text = value.strip()
            if not text.isascii() or not text.isdigit() or len(text) > 16:
                raise ValidationError("Not a valid ticket id.", field_name="id")
            data = {**data, "id": int(text)}
        return data

    @post_load
    def _to_callout(self, data: dict[str, Any], **_: Any) -> Callout:
        return Callout(
            ticket_id=data["id"],
            status=" ".join(data["status"].split()),
            number=data.get("number"),
            domain=data.get("domain"),
            created=parse_timestamp(data.get("created_datetime")),
            last_activity=parse_timestamp(data.get("last_activity_datetime")),
        )


#: One instance for every request: building a marshmallow schema deep-copies its fields,
#: which cost more than the load itself (docs/performance.md). Loading does not change it.
_CALLOUT_SCHEMA = CalloutSchema()
_KNOWN_CALLOUT_KEYS = frozenset(_CALLOUT_SCHEMA.fields)


def _text_or_none(data: dict[str, Any], key: str, longest: int) -> tuple[bool, str | None]:
    value = data.get(key)
    if value is None or (isinstance(value, str) and len(value) <= longest):
        return True, value
    return False, None


def _load_plain(data: dict[str, Any]) -> Callout | None:
    """The schema's result for a plainly valid callout, without marshmallow; None otherwise.

    What Autotask sends (text fields within their limits) is checked here exactly
    as ``CalloutSchema`` checks it; anything else, and every invalid body, goes
    through the schema, which gives the same result and the field errors.
    """
    ticket, status = data.get("id"), data.get("status")
    if isinstance(ticket, str):
        text = ticket.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 16):
            return None
        ticket = int(text)
    elif not isinstance(ticket, int) or isinstance(ticket, bool):
        return None
    if not 1 <= ticket <= MAX_TICKET_ID:
        return None
    if not isinstance(status, str) or len(status) > 128 or not status.strip():
        return None
    number_ok, number = _text_or_none(data, "number", 64)
    domain_ok, domain = _text_or_none(data, "domain", 255)
    if not (number_ok and domain_ok):
        return None
    return Callout(
        ticket_id=ticket,
        status=" ".join(status.split()),
        number=number,
        domain=domain,
        created=parse_timestamp(data.get("created_datetime")),
        last_activity=parse_timestamp(data.get("last_activity_datetime")),
    )


def load_callout(data: dict[str, Any]) -> Callout:
    """Validate a callout body; unknown keys ride along in ``extra``, truncated and bounded."""
    callout: Callout | None = _load_plain(data) if isinstance(data, dict) else None
    if callout is None:
        callout = _CALLOUT_SCHEMA.load(data)
    extra = {
        str(key)[:64]: str(value)[:MAX_EXTRA_CHARS]
        for key, value in list(data.items())
        if key not in _KNOWN_CALLOUT_KEYS
    }
    if extra:
        kept = dict(list(extra.items())[:MAX_EXTRA_KEYS])
        callout = Callout(**{**callout.__dict__, "extra": kept})
    return callout


# -- ilert alert-action webhooks ------------------------------------------------------------

#: The custom body template's variable names (docs/sync.md recommends a template using them).
_TEMPLATE_NAMES = {
    "alertId": "id",
    "alertStatus": "status",
    "alertSummary": "summary",
    "alertUrl": "url",
}
ILERT_STATUSES = ("PENDING", "ACCEPTED", "RESOLVED")


class _PersonSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    username = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    email = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    firstName = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    lastName = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))


@dataclass(frozen=True)
class AlertWebhook:
    """One alert-action webhook from ilert, validated."""

    status: str
    alert_key: str | None
    alert_id: str | None = None
    event_type: str | None = None
    url: str | None = None
    reported_at: datetime | None = None
    person: dict[str, str | None] = field(default_factory=dict)

    @property
    def who(self) -> str:
        """A readable name for the ticket note: "Jane Doe (jdoe)", or what ilert told us."""
        p = self.person
        name = " ".join(x for x in (p.get("firstName"), p.get("lastName")) if x)
        handle = p.get("username") or p.get("email")
        if name and handle:
            return f"{name} ({handle})"
        return name or handle or "someone in ilert"


class AlertWebhookSchema(Schema):
    """ilert's default webhook body, or a custom template with its variable names as keys."""

    class Meta:
        unknown = EXCLUDE

    id = fields.Raw(load_default=None, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(ILERT_STATUSES))
    alertKey = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    eventType = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2048))
    reportTime = fields.Raw(load_default=None, allow_none=True)
    assignedTo = fields.Nested(_PersonSchema, load_default=None, allow_none=True)

    @pre_load
    def _normalise(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {_TEMPLATE_NAMES.get(k, k): v for k, v in data.items()}
        if isinstance(data.get("status"), str):
            data["status"] = data["status"].strip().upper()
        alert_id = data.get("id")
        if isinstance(alert_id, bool) or not isinstance(alert_id, str | int | type(None)):
            raise ValidationError("Must be a string or a number.", field_name="id")
        if alert_id is not None and len(str(alert_id)) > 64:
            raise ValidationError("Longer than 64 characters.", field_name="id")
        return data

    @post_load
    def _to_webhook(self, data: dict[str, Any], **_: Any) -> AlertWebhook:
        alert_id = data.get("id")
        return AlertWebhook(
            status=data["status"],
            alert_key=data.get("alertKey"),
            alert_id=None if alert_id is None else str(alert_id),
            event_type=data.get("eventType"),
            url=data.get("url"),
            reported_at=parse_timestamp(data.get("reportTime")),
            person=dict(data.get("assignedTo") or {}),
        )


def load_alert_webhook(data: dict[str, Any]) -> AlertWebhook:
    webhook: AlertWebhook = AlertWebhookSchema().load(data)
    return webhook


# -- Autotask REST webhooks (TicketWebhooks) ---------------------------------------------

#: What ``Action`` may say, spelt as Autotask spells it (matched case-insensitively).
WEBHOOK_ACTIONS = ("Create", "Update", "Delete", "Deactivated")
DEACTIVATED = "Deactivated"
#: A delivery carries the subscribed and display-always fields of one ticket: a handful.
MAX_WEBHOOK_FIELDS = 64
_GUID = re.compile(r"^[A-Za-z0-9{}-]{1,64}$")
_WEBHOOK_KEYS = ("Action", "Guid", "EntityType", "Id", "Fields", "EventTime", "SequenceNumber",
                 "PersonID")


def fold_keys(data: dict[str, Any], what: str) -> dict[str, Any]:
    """The mapping with its keys case-folded; two spellings of one key with different values are an error.

    Autotask has not said how it cases the keys of ``Fields`` (``status`` or
    ``Status``), so they are read either way.
    """
    folded: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).casefold()
        if name in folded and folded[name] != value:
            raise ValidationError(f"{key!r} is given twice, in different case, with different values.",
                                  field_name=what)
        folded[name] = value
    return folded


@dataclass(frozen=True)
class AutotaskWebhook:
    """One delivery of an Autotask TicketWebhook, validated; ``fields`` has case-folded keys."""

    action: str
    guid: str
    sequence: int
    ticket_id: int
    entity_type: str = "Ticket"
    fields: dict[str, Any] = field(default_factory=dict)
    event_time: datetime | None = None
    person_id: int | None = None

    @property
    def status_value(self) -> int | None:
        """The status picklist id, when the delivery carries it."""
        value = self.fields.get("status")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def ticket_number(self) -> str | None:
        number = self.fields.get("ticketnumber")
        return number if isinstance(number, str) and len(number) <= 64 else None


def _picklist_id(value: Any) -> Any:
    """A picklist value as Autotask sends it: a number, or its digits as text."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() \
            and len(value.strip()) <= 16:
        return int(value.strip())
    return value


class AutotaskWebhookSchema(Schema):
    """The JSON body of an Autotask TicketWebhook delivery (docs/autotask-webhooks.md)."""

    class Meta:
        unknown = EXCLUDE

    Action = fields.String(required=True, validate=validate.OneOf(WEBHOOK_ACTIONS))
    Guid = fields.String(required=True, validate=validate.Regexp(_GUID, error="Not a webhook GUID."))
    EntityType = fields.String(load_default="Ticket", validate=validate.Length(max=64))
    Id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_TICKET_ID))
    Fields = fields.Dict(keys=fields.String(validate=validate.Length(max=128)), load_default=dict,
                         validate=validate.Length(max=MAX_WEBHOOK_FIELDS))
    EventTime = fields.Raw(load_default=None, allow_none=True)
    SequenceNumber = fields.Integer(required=True, strict=True,
                                    validate=validate.Range(min=0, max=MAX_TICKET_ID))
    PersonID = fields.Integer(load_default=None, allow_none=True, strict=True,
                              validate=validate.Range(min=0, max=MAX_TICKET_ID))

    @pre_load
    def _canonical(self, data: Any, **_: Any) -> Any:
        """Keys in any case; ``Action`` in any case; picklist ids in ``Fields`` as numbers."""
        if not isinstance(data, dict):
            return data
        names = {name.casefold(): name for name in _WEBHOOK_KEYS}
        folded = fold_keys(data, "_schema")
        data = {names.get(key, key): value for key, value in folded.items()}
        action = data.get("Action")
        if isinstance(action, str):
            data["Action"] = next((a for a in WEBHOOK_ACTIONS if a.casefold() == action.strip().casefold()),
                                  action)
        given = data.get("Fields")
        if isinstance(given, dict):
            if len(given) > MAX_WEBHOOK_FIELDS:
                raise ValidationError(f"More than {MAX_WEBHOOK_FIELDS} fields.", field_name="Fields")
            given = fold_keys(given, "Fields")
            if "status" in given:
                status = _picklist_id(given["status"])
                if isinstance(status, bool) or not isinstance(status, int | type(None)):
                    raise ValidationError("The status must be a picklist id.", field_name="Fields")
                given["status"] = status
            data["Fields"] = given
        return data

    @post_load
    def _to_webhook(self, data: dict[str, Any], **_: Any) -> AutotaskWebhook:
        return AutotaskWebhook(
            action=data["Action"],
            guid=data["Guid"],
            sequence=data["SequenceNumber"],
            ticket_id=data["Id"],
            entity_type=data["EntityType"],
            fields=dict(data["Fields"]),
            event_time=parse_timestamp(data.get("EventTime")),
            person_id=data.get("PersonID"),
        )


_AUTOTASK_WEBHOOK_SCHEMA = AutotaskWebhookSchema()


def load_autotask_webhook(data: dict[str, Any]) -> AutotaskWebhook:
    webhook: AutotaskWebhook = _AUTOTASK_WEBHOOK_SCHEMA.load(data)
    return webhook
