"""A local stand-in for the Autotask REST API and for its Extension Callout.

The simulator also plays the tenant's workflow rule: creating a ticket or changing
its status POSTs a callout to ``callout_url``, including changes the bridge itself
makes through ``PATCH /Tickets`` (a rule "Edited by: Anyone" fires on those too),
because those echoes are where ticket/alert bridges loop.

It is deliberately strict where Autotask is (unknown fields, invalid picklist
values, missing note fields all fail) so a bridge bug shows up here rather than in
a customer's tenant.

Run it alone with ``python -m flask_autotask_ilert.testing.autotask_sim --port 0
--port-file F``; everything is then controllable over ``/_sim/...``.
"""

from __future__ import annotations

import argparse
import copy
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import quote_plus

import requests
from flask import Flask, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from . import picklists
from .picklists import PicklistValue
from .servers import FaultInjector, fault_response, json_response, run_main, was_dropped

__all__ = [
    "API_PREFIX",
    "DEFAULT_CODE",
    "DEFAULT_DOMAIN",
    "DEFAULT_SECRET",
    "DEFAULT_USER",
    "ApiCall",
    "AutotaskState",
    "CalloutRecord",
    "CalloutResult",
    "create_autotask_simulator",
    "main",
]

API_ROOT = "/atservicesrest"
API_PREFIX = f"{API_ROOT}/v1.0"
ZONE_PATH = f"{API_PREFIX}/zoneInformation"

DEFAULT_USER = "sim-api-user@example.com"
DEFAULT_SECRET = "sim-secret"
DEFAULT_CODE = "SIMCODE"
DEFAULT_DOMAIN = "EXAMPLESANDBOX.COM"
DEFAULT_QUEUE_ID = 29683354

REQUEST_THRESHOLD = 10_000
THRESHOLD_TIMEFRAME_MINUTES = 60
_HOUR = 3600.0

FIRST_TICKET_ID = 10_001
NOTE_TITLE_MAX = 250
NOTE_DESCRIPTION_MAX = 32_000

# Fields a ticket carries, in the order Autotask lists them; anything else in a
# PATCH is rejected, as Autotask rejects fields it does not know.
TICKET_FIELDS = (
    "id",
    "ticketNumber",
    "title",
    "description",
    "status",
    "priority",
    "queueID",
    "companyID",
    "contactID",
    "assignedResourceID",
    "assignedResourceRoleID",
    "issueType",
    "subIssueType",
    "source",
    "ticketType",
    "ticketCategory",
    "dueDateTime",
    "createDate",
    "lastActivityDate",
    "completedDate",
    "externalID",
    "resolution",
    "estimatedHours",
    "userDefinedFields",
)
READ_ONLY_FIELDS = frozenset({"id", "ticketNumber", "createDate", "lastActivityDate", "completedDate"})
_FIELD_BY_FOLDED = {name.casefold(): name for name in TICKET_FIELDS}


@dataclass(frozen=True)
class ApiCall:
    """One REST request as received; ``status_code`` None means the connection was dropped."""

    seq: int
    at: float
    method: str
    path: str
    status_code: int | None
    json_body: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "status_code": self.status_code,
            "json_body": self.json_body,
        }


@dataclass(frozen=True)
class CalloutResult:
    """How the callout receiver answered; ``status_code`` None when it could not be reached."""

    status_code: int | None
    body_json: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_json(self) -> dict[str, Any]:
        return {"status_code": self.status_code, "body": self.body_json, "error": self.error}


@dataclass(frozen=True)
class CalloutRecord:
    """A callout the simulator sent. ``trigger`` is "create", "status" or "patch"."""

    ticket_id: int
    status: str
    status_code: int | None
    body_json: Any
    error: str | None
    trigger: str
    payload: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "status": self.status,
            "status_code": self.status_code,
            "body": self.body_json,
            "error": self.error,
            "trigger": self.trigger,
            "payload": self.payload,
            "at": self.at,
        }


class _ApiError(Exception):
    """Autotask's usual failure: HTTP 500 with a list of messages."""

    def __init__(self, *errors: str, status: int = 500) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)
        self.status = status


@dataclass
class _Ticket:
    fields: dict[str, Any]
    created: datetime
    last_activity: datetime
    notes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _CalloutJob:
    ticket_id: int
    status: str
    payload: str
    trigger: str
    url: str
    auth: tuple[str, str] | None
    timeout: float


def _now() -> datetime:
    """UTC now at millisecond precision, the precision the REST API shows."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _rest_time(dt: datetime) -> str:
    utc = dt.astimezone(timezone.utc)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _callout_time(dt: datetime, offset: timedelta) -> str:
    """The callout's odd format: 8 fractional digits and an offset with seconds."""
    local = dt.astimezone(timezone(offset))
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}00{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"


def _default_error(status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"errors": [phrase]}


class AutotaskState(FaultInjector):
    """Tickets, notes, recorded calls and callouts of one simulated tenant.

    Thread-safe. The lock is never held while a callout is out: the receiver (the
    bridge) typically calls straight back into this simulator to read the ticket.
    """

    def __init__(
        self,
        *,
        callout_url: str | None = None,
        callout_auth: tuple[str, str] | None = None,
        domain: str = DEFAULT_DOMAIN,
        seed: int | None = None,
    ) -> None:
        super().__init__(("500",))
        self.users: set[str] = {DEFAULT_USER}
        # username -> (secret, integration code)
        self.credentials: dict[str, tuple[str, str]] = {DEFAULT_USER: (DEFAULT_SECRET, DEFAULT_CODE)}
        # Base URL that zone discovery reports; the address asked when None.
        self.zone_url: str | None = None
        self.domain = domain
        self.callout_url = callout_url
        self.callout_auth = callout_auth
        self.callout_timeout = 10.0
        self.fire_callouts = True
        # The capture this mimics came from a US Eastern tenant in summer.
        self.callout_utc_offset = timedelta(hours=-4)
        self.usage_override: int | None = None
        # Per-tenant copies, so a test can rename a label or add a status.
        self.status_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.TICKET_STATUS))
        self.priority_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.TICKET_PRIORITY))
        self.note_type_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.NOTE_TYPE))
        self.note_publish_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.NOTE_PUBLISH))
        self.seed = seed
        self._tickets: dict[int, _Ticket] = {}
        self._calls: list[ApiCall] = []
        self._auth_times: deque[float] = deque()
        self._callouts: list[CalloutRecord] = []
        self._callout_cond = threading.Condition(self._lock)
        self._pending_callouts = 0
        self._last_background: threading.Thread | None = None
        # Never reset: Autotask never reuses a ticket id or number.
        self._next_ticket_id = FIRST_TICKET_ID
        self._next_note_id = 1
        self._numbers_per_day: dict[str, int] = {}

    # --- tickets, from the test's side -------------------------------------------

    def add_ticket(
        self,
        title: str,
        priority_label: str = "Medium",
        status_label: str = "New",
        description: str = "",
        *,
        ticket_id: int | None = None,
        queue_id: int | None = DEFAULT_QUEUE_ID,
        company_id: int = 0,
    ) -> dict[str, Any]:
        """Create a ticket as a person would, firing the creation callout first.

        The callout's answer is in ``callouts()[-1]`` (when one was configured).
        """
        ticket, _ = self.create_ticket(
            title,
            priority_label,
            status_label,
            description,
            ticket_id=ticket_id,
            queue_id=queue_id,
            company_id=company_id,
        )
        return ticket

    def create_ticket(
        self,
        title: str,
        priority_label: str = "Medium",
        status_label: str = "New",
        description: str = "",
        *,
        ticket_id: int | None = None,
        queue_id: int | None = DEFAULT_QUEUE_ID,
        company_id: int = 0,
    ) -> tuple[dict[str, Any], CalloutResult | None]:
        """``add_ticket`` that also returns the callout's answer (None if none fired)."""
        with self._lock:
            priority = picklists.value_for_label(self.priority_picklist, priority_label)
            status = picklists.value_for_label(self.status_picklist, status_label)
            if ticket_id is None:
                while self._next_ticket_id in self._tickets:
                    self._next_ticket_id += 1
                ticket_id = self._next_ticket_id
                self._next_ticket_id += 1
            elif ticket_id in self._tickets:
                raise ValueError(f"ticket {ticket_id} exists")
            now = _now()
            day = f"{now.astimezone(timezone(self.callout_utc_offset)):%Y%m%d}"
            self._numbers_per_day[day] = self._numbers_per_day.get(day, 0) + 1
            fields: dict[str, Any] = dict.fromkeys(TICKET_FIELDS)
            fields.update(
                id=ticket_id,
                ticketNumber=f"T{day}.{self._numbers_per_day[day]:04d}",
                title=title,
                description=description,
                status=status,
                priority=priority,
                queueID=queue_id,
                companyID=company_id,
                source=8,
                ticketType=1,
                ticketCategory=3,
                dueDateTime=_rest_time(now + timedelta(days=1)),
                createDate=_rest_time(now),
                lastActivityDate=_rest_time(now),
                userDefinedFields=[],
            )
            record = _Ticket(fields, created=now, last_activity=now)
            if status_label.casefold() == picklists.COMPLETE_STATUS_LABEL.casefold():
                fields["completedDate"] = _rest_time(now)
            self._tickets[ticket_id] = record
            snapshot = copy.deepcopy(fields)
            job = self._callout_job(record, "create")
        return snapshot, (self._send_callout(job) if job else None)

    def set_status(self, ticket_id: int, status_label: str) -> CalloutResult | None:
        """Change the status as a person would; fires the callout even if unchanged.

        Setting the same status again is the easy way to make Autotask deliver a
        duplicate callout, which the bridge must shrug off.
        """
        with self._lock:
            record = self._tickets.get(ticket_id)
            if record is None:
                raise KeyError(f"no ticket {ticket_id}")
            value = picklists.value_for_label(self.status_picklist, status_label)
            self._change_status(record, value)
            self._touch(record)
            job = self._callout_job(record, "status")
        return self._send_callout(job) if job else None

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        with self._lock:
            record = self._tickets.get(ticket_id)
            return None if record is None else copy.deepcopy(record.fields)

    def tickets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r.fields) for r in self._tickets.values()]

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            record = self._tickets.get(ticket_id)
            return [] if record is None else copy.deepcopy(record.notes)

    def status_label(self, ticket_id: int) -> str:
        with self._lock:
            record = self._tickets[ticket_id]
            return picklists.label_for_value(self.status_picklist, record.fields["status"])

    # --- inspection ----------------------------------------------------------------

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def calls_matching(self, method: str | None = None, path_prefix: str = "") -> list[ApiCall]:
        """Calls by method (any when None) whose path starts with ``path_prefix``.

        The prefix may be given without ``/atservicesrest/v1.0`` (``"/Tickets"``).
        """
        prefixes = (path_prefix, f"{API_PREFIX}{path_prefix}")
        with self._lock:
            return [
                c
                for c in self._calls
                if (method is None or c.method.upper() == method.upper()) and c.path.startswith(prefixes)
            ]

    def callouts(self) -> list[CalloutRecord]:
        with self._lock:
            return list(self._callouts)

    def wait_for_callouts(self, count: int, timeout: float = 5.0) -> list[CalloutRecord]:
        """All callouts once at least ``count`` were sent; TimeoutError otherwise."""
        with self._callout_cond:
            if not self._callout_cond.wait_for(lambda: len(self._callouts) >= count, timeout):
                raise TimeoutError(f"{len(self._callouts)} callouts sent, waited for {count}")
            return list(self._callouts)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every callout caused by a PATCH has been delivered."""
        with self._callout_cond:
            return self._callout_cond.wait_for(lambda: self._pending_callouts == 0, timeout)

    def request_count(self) -> int:
        """Authenticated requests in the last hour, as ThresholdInformation reports them."""
        with self._lock:
            if self.usage_override is not None:
                return self.usage_override
            self._prune_auth_times(time.monotonic())
            return len(self._auth_times)

    def reset(self) -> None:
        """Forget tickets, calls, callouts and faults; keep configuration and id counters."""
        with self._lock:
            self._tickets.clear()
            self._calls.clear()
            self._auth_times.clear()
            self._callouts.clear()
            self.clear_faults()

    def configure(self, data: Mapping[str, Any]) -> None:
        """Apply the JSON of ``POST /_sim/config``; only the keys present change."""
        allowed = {
            "callout_url",
            "callout_auth",
            "credentials",
            "users",
            "domain",
            "zone_url",
            "usage_override",
            "fire_callouts",
            "callout_timeout",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for key in ("callout_url", "zone_url"):
            if key in data:
                changes[key] = _optional_str(data[key], key)
        if "domain" in data:
            if not isinstance(data["domain"], str) or not data["domain"]:
                raise ValueError("domain must be a non-empty string")
            changes["domain"] = data["domain"]
        if "callout_auth" in data:
            changes["callout_auth"] = _optional_pair(data["callout_auth"], "callout_auth")
        if "credentials" in data:
            creds = data["credentials"]
            if not isinstance(creds, Mapping):
                raise ValueError("credentials must map usernames to [secret, integration code]")
            pairs = {str(user): _optional_pair(pair, "credential") for user, pair in creds.items()}
            changes["credentials"] = {u: p for u, p in pairs.items() if p is not None}
        if "users" in data:
            users = data["users"]
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ValueError("users must be a list of strings")
            changes["users"] = set(users)
        if "usage_override" in data:
            usage = data["usage_override"]
            if usage is not None and (isinstance(usage, bool) or not isinstance(usage, int)):
                raise ValueError("usage_override must be an integer or null")
            changes["usage_override"] = usage
        if "fire_callouts" in data:
            if not isinstance(data["fire_callouts"], bool):
                raise ValueError("fire_callouts must be a boolean")
            changes["fire_callouts"] = data["fire_callouts"]
        if "callout_timeout" in data:
            timeout = data["callout_timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise ValueError("callout_timeout must be a positive number")
            changes["callout_timeout"] = float(timeout)
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def config_json(self) -> dict[str, Any]:
        """Configuration as JSON, without secrets: it may end up in logs."""
        with self._lock:
            return {
                "callout_url": self.callout_url,
                "callout_auth": self.callout_auth is not None,
                "credentials": sorted(self.credentials),
                "users": sorted(self.users),
                "domain": self.domain,
                "zone_url": self.zone_url,
                "usage_override": self.usage_override,
                "fire_callouts": self.fire_callouts,
                "callout_timeout": self.callout_timeout,
            }

    # --- the REST API ------------------------------------------------------------------

    def authenticate(self, username: str | None, secret: str | None, code: str | None) -> bool:
        """Check the three auth headers; a success counts against the hourly budget."""
        with self._lock:
            expected = self.credentials.get(username or "")
            if expected is None or expected != (secret, code):
                return False
            now = time.monotonic()
            self._auth_times.append(now)
            self._prune_auth_times(now)
            return True

    def record_call(self, method: str, path: str, status_code: int | None, body: Any) -> None:
        with self._lock:
            self._calls.append(
                ApiCall(
                    len(self._calls) + 1,
                    time.monotonic(),
                    method,
                    path,
                    status_code,
                    copy.deepcopy(body),
                )
            )

    def ticket_fields_json(self) -> dict[str, Any]:
        with self._lock:
            return picklists.ticket_fields(self.status_picklist, self.priority_picklist)

    def note_fields_json(self) -> dict[str, Any]:
        with self._lock:
            return picklists.note_fields(self.note_type_picklist, self.note_publish_picklist)

    def _patch_ticket(self, body: Any) -> tuple[int, _CalloutJob | None]:
        """Apply a PATCH all-or-nothing; the callout to send if the status changed."""
        if not isinstance(body, Mapping):
            raise _ApiError("Request body must be a JSON object")
        ticket_id = body.get("id")
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, int):
            raise _ApiError("id is required and must be an integer")
        with self._lock:
            record = self._tickets.get(ticket_id)
            if record is None:
                raise _ApiError(f"Ticket with id {ticket_id} does not exist")
            updates, errors = self._validate_update(body)
            if errors:
                raise _ApiError(*errors)
            status_before = record.fields["status"]
            for name, value in updates.items():
                if name == "status":
                    self._change_status(record, value)
                elif name == "userDefinedFields":
                    _merge_udfs(record.fields["userDefinedFields"], value)
                else:
                    record.fields[name] = value
            self._touch(record)
            changed = record.fields["status"] != status_before
            return ticket_id, (self._callout_job(record, "patch") if changed else None)

    def _validate_update(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        updates: dict[str, Any] = {}
        errors: list[str] = []
        for raw_name, value in body.items():
            if raw_name == "id":
                continue
            name = _FIELD_BY_FOLDED.get(str(raw_name).casefold())
            if name is None:
                errors.append(f"Unknown field: {raw_name}")
            elif name in READ_ONLY_FIELDS:
                errors.append(f"Field {name} is read-only")
            elif name in ("status", "priority"):
                values = self.status_picklist if name == "status" else self.priority_picklist
                if not picklists.has_value(values, value):
                    errors.append(f"Value {value!r} is not a valid {name}")
                else:
                    updates[name] = int(value)
            elif name == "userDefinedFields":
                if not isinstance(value, list) or not all(
                    isinstance(u, Mapping) and isinstance(u.get("name"), str) for u in value
                ):
                    errors.append("userDefinedFields must be a list of {name, value}")
                else:
                    updates[name] = value
            elif name == "title" and (not isinstance(value, str) or not value.strip()):
                errors.append("title must be a non-empty string")
            else:
                updates[name] = value
        return updates, errors

    def _add_note(self, ticket_id: int, body: Any) -> int:
        if not isinstance(body, Mapping):
            raise _ApiError("Request body must be a JSON object")
        with self._lock:
            record = self._tickets.get(ticket_id)
            if record is None:
                raise _ApiError(f"Ticket with id {ticket_id} does not exist")
            errors: list[str] = []
            for name, limit in (("title", NOTE_TITLE_MAX), ("description", NOTE_DESCRIPTION_MAX)):
                text = body.get(name)
                if not isinstance(text, str) or not text.strip():
                    errors.append(f"{name} is required")
                elif len(text) > limit:
                    errors.append(f"{name} is longer than {limit} characters")
            for name, values in (
                ("noteType", self.note_type_picklist),
                ("publish", self.note_publish_picklist),
            ):
                if not picklists.has_value(values, body.get(name)):
                    errors.append(f"{name} is required and must be a valid picklist value")
            if errors:
                raise _ApiError(*errors)
            note_id = self._next_note_id
            self._next_note_id += 1
            now = self._touch(record)
            record.notes.append(
                {
                    "id": note_id,
                    "ticketID": ticket_id,
                    "title": body["title"],
                    "description": body["description"],
                    "noteType": int(body["noteType"]),
                    "publish": int(body["publish"]),
                    "createDateTime": _rest_time(now),
                }
            )
            return note_id

    def _prune_auth_times(self, now: float) -> None:
        while self._auth_times and self._auth_times[0] <= now - _HOUR:
            self._auth_times.popleft()

    # --- status changes and callouts ---------------------------------------------------

    def _change_status(self, record: _Ticket, value: int) -> None:
        """The one place a ticket's status changes (completedDate follows it)."""
        record.fields["status"] = value
        label = picklists.label_for_value(self.status_picklist, value)
        if label.casefold() == picklists.COMPLETE_STATUS_LABEL.casefold():
            record.fields["completedDate"] = _rest_time(_now())
        else:
            record.fields["completedDate"] = None

    def _touch(self, record: _Ticket) -> datetime:
        """Move lastActivityDate forward, strictly, even within one millisecond."""
        now = _now()
        if now <= record.last_activity:
            now = record.last_activity + timedelta(milliseconds=1)
        record.last_activity = now
        record.fields["lastActivityDate"] = _rest_time(now)
        return now

    def _callout_job(self, record: _Ticket, trigger: str) -> _CalloutJob | None:
        """Snapshot the callout now: Autotask builds it when the rule fires."""
        if not self.fire_callouts or not self.callout_url:
            return None
        status = picklists.label_for_value(self.status_picklist, record.fields["status"])
        pairs = (
            ("id", str(record.fields["id"])),
            ("number", str(record.fields["ticketNumber"])),
            ("status", status),
            ("created_datetime", _callout_time(record.created, self.callout_utc_offset)),
            (
                "last_activity_datetime",
                _callout_time(record.last_activity, self.callout_utc_offset),
            ),
            ("domain", self.domain),
        )
        # Colons stay literal, as in the capture from a real tenant.
        payload = "&".join(f"{k}={quote_plus(v, safe=':')}" for k, v in pairs)
        return _CalloutJob(
            ticket_id=int(record.fields["id"]),
            status=status,
            payload=payload,
            trigger=trigger,
            url=self.callout_url,
            auth=self.callout_auth,
            timeout=self.callout_timeout,
        )

    def _send_callout(self, job: _CalloutJob) -> CalloutResult:
        try:
            answer = requests.post(
                job.url,
                data=job.payload.encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=job.auth,
                timeout=job.timeout,
            )
        except requests.RequestException as exc:
            result = CalloutResult(None, None, f"{type(exc).__name__}: {exc}")
        else:
            try:
                body: Any = answer.json()
            except ValueError:
                body = answer.text or None
            result = CalloutResult(answer.status_code, body)
        record = CalloutRecord(
            ticket_id=job.ticket_id,
            status=job.status,
            status_code=result.status_code,
            body_json=result.body_json,
            error=result.error,
            trigger=job.trigger,
            payload=job.payload,
            at=time.monotonic(),
        )
        with self._callout_cond:
            self._callouts.append(record)
            self._callout_cond.notify_all()
        return result

    def _send_later(self, job: _CalloutJob) -> threading.Event:
        """Send ``job`` from a background thread once the returned event is set.

        Callouts leave in the order their changes happened: each thread waits for
        the previous one. The event is set when the PATCH answer has gone out; the
        wait is bounded so a response never closed cannot wedge the queue.
        """
        answered = threading.Event()
        with self._callout_cond:
            previous = self._last_background
            self._pending_callouts += 1
            thread = threading.Thread(
                target=self._background_callout,
                args=(job, previous, answered),
                name=f"sim-callout-{job.ticket_id}",
                daemon=True,
            )
            self._last_background = thread
            thread.start()  # under the lock: a successor must never join it unstarted
        return answered

    def _background_callout(
        self, job: _CalloutJob, previous: threading.Thread | None, answered: threading.Event
    ) -> None:
        try:
            answered.wait(1.0)
            if previous is not None:
                previous.join()
            self._send_callout(job)
        finally:
            with self._callout_cond:
                self._pending_callouts -= 1
                if self._last_background is threading.current_thread():
                    self._last_background = None
                self._callout_cond.notify_all()


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _optional_pair(value: Any, name: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a pair of strings or null")
    return (value[0], value[1])


def _merge_udfs(current: list[dict[str, Any]], given: Iterable[Mapping[str, Any]]) -> None:
    """PATCH semantics for user-defined fields: only the named ones change."""
    for udf in given:
        for existing in current:
            if existing.get("name") == udf["name"]:
                existing["value"] = udf.get("value")
                break
        else:
            current.append({"name": udf["name"], "value": udf.get("value")})


def _sim_json() -> Mapping[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, Mapping):
        raise ValueError("body must be a JSON object")
    return data


def _with_callout(ticket: dict[str, Any] | None, result: CalloutResult | None) -> Response:
    return json_response({"ticket": ticket, "callout": None if result is None else result.to_json()})


def create_autotask_simulator(state: AutotaskState | None = None) -> Flask:
    """A Flask app answering like Autotask, state in ``extensions["autotask_sim"]``."""
    sim = state if state is not None else AutotaskState()
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True  # a simulator bug must fail loudly
    app.extensions["autotask_sim"] = sim

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return json_response(_default_error(status), status)

    @app.errorhandler(_ApiError)
    def _api_error(exc: _ApiError) -> Response:
        return json_response({"errors": exc.errors}, exc.status)

    @app.errorhandler(ValueError)
    def _bad_sim_request(exc: ValueError) -> Response:
        return json_response({"error": str(exc)}, 400)

    @app.before_request
    def _gate() -> Response | None:
        if not request.path.startswith(API_ROOT):
            return None
        g.sim_json = request.get_json(force=True, silent=True)
        sim._sleep_latency()
        fault = sim.next_fault()
        if fault is not None:
            answer = fault_response(fault, request.environ, _default_error)
            if answer is not None:
                return answer
        if request.path == ZONE_PATH:
            return None
        headers = request.headers
        if not sim.authenticate(
            headers.get("UserName"), headers.get("Secret"), headers.get("ApiIntegrationCode")
        ):
            return json_response({"errors": ["Unauthorized"]}, 401)
        return None

    @app.after_request
    def _record(response: Response) -> Response:
        if request.path.startswith(API_ROOT):
            status = None if was_dropped(request.environ) else response.status_code
            sim.record_call(request.method, request.path, status, g.get("sim_json"))
        return response

    @app.get(ZONE_PATH)
    def zone_information() -> Response:
        user = request.args.get("user", "")
        if user not in sim.users:
            return json_response({"errors": ["Zone information could not be determined"]}, 500)
        base = (sim.zone_url or request.host_url).rstrip("/")
        return json_response({"zoneName": "Simulated", "url": f"{base}{API_ROOT}", "webUrl": base, "ci": 5})

    @app.get(f"{API_PREFIX}/Tickets/<int:ticket_id>")
    def get_ticket(ticket_id: int) -> Response:
        return json_response({"item": sim.ticket(ticket_id)})

    @app.post(f"{API_PREFIX}/Tickets/query")
    def query_tickets_by_id() -> Response:
        """The one query the bridge makes: an ``in`` filter on id (up to 500 ids)."""
        body = g.get("sim_json")
        conditions = body.get("filter") if isinstance(body, dict) else None
        if (not isinstance(conditions, list) or len(conditions) != 1
                or not isinstance(conditions[0], dict) or conditions[0].get("op") != "in"
                or conditions[0].get("field") != "id" or not isinstance(conditions[0].get("value"), list)):
            raise _ApiError("only an 'in' filter on id is simulated", status=400)
        ids = [int(v) for v in conditions[0]["value"][:500]]
        items = [t for t in (sim.ticket(i) for i in ids) if t is not None]
        return json_response({"items": items, "pageDetails": {
            "count": len(items), "requestCount": 500, "prevPageUrl": None, "nextPageUrl": None}})

    @app.get(f"{API_PREFIX}/Tickets/entityInformation/fields")
    def ticket_fields() -> Response:
        return json_response(sim.ticket_fields_json())

    @app.get(f"{API_PREFIX}/TicketNotes/entityInformation/fields")
    def note_fields() -> Response:
        return json_response(sim.note_fields_json())

    @app.patch(f"{API_PREFIX}/Tickets")
    def patch_ticket() -> Response:
        ticket_id, job = sim._patch_ticket(g.sim_json)
        response = json_response({"itemId": ticket_id})
        if job is not None:
            response.call_on_close(sim._send_later(job).set)
        return response

    @app.put(f"{API_PREFIX}/Tickets")
    def put_ticket() -> Response:
        # Real Autotask accepts PUT and nulls every omitted field; a bridge that
        # sends one is broken, so the simulator refuses loudly instead.
        message = "PUT replaces the whole ticket; the simulator refuses it: use PATCH"
        return json_response({"errors": [message]}, 405, {"Allow": "GET, PATCH"})

    @app.post(f"{API_PREFIX}/Tickets/<int:ticket_id>/Notes")
    def add_note(ticket_id: int) -> Response:
        return json_response({"itemId": sim._add_note(ticket_id, g.sim_json)})

    @app.get(f"{API_PREFIX}/ThresholdInformation")
    def threshold_information() -> Response:
        return json_response(
            {
                "externalRequestThreshold": REQUEST_THRESHOLD,
                "requestThresholdTimeframe": THRESHOLD_TIMEFRAME_MINUTES,
                "currentTimeframeRequestCount": sim.request_count(),
            }
        )

    # --- sim control ---------------------------------------------------------------------

    @app.post("/_sim/tickets")
    def sim_create_ticket() -> Response:
        data = _sim_json()
        title = data.get("title")
        if not isinstance(title, str) or not title:
            raise ValueError("title is required")
        ticket_id = data.get("id")
        if ticket_id is not None and (isinstance(ticket_id, bool) or not isinstance(ticket_id, int)):
            raise ValueError("id must be an integer")
        ticket, result = sim.create_ticket(
            title,
            str(data.get("priority", "Medium")),
            str(data.get("status", "New")),
            str(data.get("description", "")),
            ticket_id=ticket_id,
        )
        return _with_callout(ticket, result)

    @app.post("/_sim/tickets/<int:ticket_id>/status")
    def sim_set_status(ticket_id: int) -> Response:
        label = _sim_json().get("status")
        if not isinstance(label, str):
            raise ValueError("status label is required")
        if sim.ticket(ticket_id) is None:
            return json_response({"error": f"no ticket {ticket_id}"}, 404)
        result = sim.set_status(ticket_id, label)
        return _with_callout(sim.ticket(ticket_id), result)

    @app.get("/_sim/tickets")
    def sim_tickets() -> Response:
        return json_response(sim.tickets())

    @app.get("/_sim/tickets/<int:ticket_id>")
    def sim_ticket(ticket_id: int) -> Response:
        ticket = sim.ticket(ticket_id)
        if ticket is None:
            return json_response({"error": f"no ticket {ticket_id}"}, 404)
        return json_response({"ticket": ticket, "notes": sim.notes(ticket_id)})

    @app.get("/_sim/calls")
    def sim_calls() -> Response:
        return json_response([c.to_json() for c in sim.calls()])

    @app.get("/_sim/callouts")
    def sim_callouts() -> Response:
        return json_response([c.to_json() for c in sim.callouts()])

    @app.post("/_sim/reset")
    def sim_reset() -> Response:
        sim.reset()
        return json_response({"ok": True})

    @app.get("/_sim/faults")
    def sim_get_faults() -> Response:
        return json_response(sim.faults_json())

    @app.post("/_sim/faults")
    def sim_set_faults() -> Response:
        sim.configure_faults(_sim_json())
        return json_response(sim.faults_json())

    @app.get("/_sim/config")
    def sim_get_config() -> Response:
        return json_response(sim.config_json())

    @app.post("/_sim/config")
    def sim_set_config() -> Response:
        sim.configure(_sim_json())
        return json_response(sim.config_json())

    return app


def main(argv: Sequence[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--callout-url", help="where the simulated workflow rule posts")
        parser.add_argument("--callout-user", help="HTTP Basic user for the callout")
        parser.add_argument("--callout-password", help="HTTP Basic password for the callout")
        parser.add_argument("--domain", default=DEFAULT_DOMAIN)
        parser.add_argument("--seed", type=int, help="seed for fail_rate")

    def factory(args: argparse.Namespace) -> Flask:
        auth = None
        if args.callout_user is not None:
            auth = (args.callout_user, args.callout_password or "")
        state = AutotaskState(
            callout_url=args.callout_url, callout_auth=auth, domain=args.domain, seed=args.seed
        )
        return create_autotask_simulator(state)

    return run_main(argv, factory, description="Simulated Autotask REST API", add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
