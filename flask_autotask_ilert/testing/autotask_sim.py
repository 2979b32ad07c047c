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
import base64
import copy
import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
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
#: The entities a ticket points at that the simulator keeps (alert text templates read them).
ENTITY_NAMES = ("Companies", "Contacts", "Resources")


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
        # Callouts lost on the way: held back (the host app down, a deploy) until released, if ever.
        self.hold_callouts = False
        self._held: list[_CalloutJob] = []
        # The capture this mimics came from a US Eastern tenant in summer.
        self.callout_utc_offset = timedelta(hours=-4)
        self.usage_override: int | None = None
        # Per-tenant copies, so a test can rename a label or add a status.
        self.status_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.TICKET_STATUS))
        self.priority_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.TICKET_PRIORITY))
        self.note_type_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.NOTE_TYPE))
        self.note_publish_picklist: list[PicklistValue] = copy.deepcopy(list(picklists.NOTE_PUBLISH))
        self._init_entities()
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
        self.webhooks = TicketWebhooks()

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
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], CalloutResult | None]:
        """``add_ticket`` that also returns the callout's answer (None if none fired).

        ``extra``: more ticket fields as Autotask names them (``contactID``,
        ``issueType``, ...), set before the callout fires.
        """
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
            fields.update(self._extra_ticket_fields(extra))
            record = _Ticket(fields, created=now, last_activity=now)
            if status_label.casefold() == picklists.COMPLETE_STATUS_LABEL.casefold():
                fields["completedDate"] = _rest_time(now)
            self._tickets[ticket_id] = record
            self.webhooks.ticket_changed(fields, "Create", None, self.webhooks.acting_resource_id)
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
            before = dict(record.fields)
            self._change_status(record, value)
            self._touch(record)
            self.webhooks.ticket_changed(record.fields, "Update", before, self.webhooks.acting_resource_id)
            job = self._callout_job(record, "status")
        return self._send_callout(job) if job else None

    def backdate(self, ticket_id: int, created: datetime) -> None:
        """Make a ticket older than it is (one opened before the bridge was installed)."""
        with self._lock:
            record = self._tickets[ticket_id]
            record.created = created
            record.fields["createDate"] = _rest_time(created)

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

    def held_callouts(self) -> int:
        with self._lock:
            return len(self._held)

    def release_callouts(self) -> list[CalloutResult]:
        """Deliver the held callouts now, oldest first (a lost callout that turns up late)."""
        with self._lock:
            jobs, self._held = self._held, []
        return [self._deliver_callout(job) for job in jobs]

    def drop_callouts(self) -> int:
        """Forget the held callouts: lost for good, as Autotask never retries one."""
        with self._lock:
            dropped, self._held = len(self._held), []
        return dropped

    def query_tickets(self, body: Any, page: int, base_url: str) -> dict[str, Any]:
        """``POST Tickets/query``: the matching tickets by id, a page at a time.

        ``nextPageUrl`` is absolute, as Autotask's is, and names the next page;
        the same body is sent again with it.
        """
        if not isinstance(body, Mapping) or not isinstance(body.get("filter"), list):
            raise _ApiError("filter is required and must be a list of conditions")
        size = body.get("MaxRecords", body.get("maxRecords", 500))
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 500:
            raise _ApiError("MaxRecords must be between 1 and 500")
        conditions = body["filter"]
        with self._lock:
            found = [
                copy.deepcopy(r.fields)
                for _, r in sorted(self._tickets.items())
                if all(_matches(r.fields, c) for c in conditions)
            ]
        items = found[page * size:(page + 1) * size]
        more = (page + 1) * size < len(found)
        return {
            "items": items,
            "pageDetails": {
                "count": len(items),
                "requestCount": size,
                "prevPageUrl": None,
                "nextPageUrl": f"{base_url}{API_PREFIX}/Tickets/query/next?page={page + 1}" if more else None,
            },
        }

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
            self._held.clear()
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
            "hold_callouts",
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
        for switch in ("fire_callouts", "hold_callouts"):
            if switch in data:
                if not isinstance(data[switch], bool):
                    raise ValueError(f"{switch} must be a boolean")
                changes[switch] = data[switch]
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
                "hold_callouts": self.hold_callouts,
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
            answer = picklists.ticket_fields(self.status_picklist, self.priority_picklist)
            answer["fields"] += self._routing_picklist_fields()
            return answer

    def note_fields_json(self) -> dict[str, Any]:
        with self._lock:
            return picklists.note_fields(self.note_type_picklist, self.note_publish_picklist)

    # --- companies, contacts, resources and the routing picklists (alert text, routing) ----

    def _init_entities(self) -> None:
        # Entity name ("Companies", "Contacts", "Resources") -> id -> fields.
        self.entities: dict[str, dict[int, dict[str, Any]]] = {e: {} for e in ENTITY_NAMES}
        self.routing_picklists: dict[str, list[PicklistValue]] = {
            name: copy.deepcopy(list(values)) for name, values in picklists.ROUTING_PICKLISTS.items()
        }
        self._next_entity_id = 29_000_001

    def add_company(self, name: str, **fields: Any) -> dict[str, Any]:
        """A company, with the fields given (Autotask's names) besides ``companyName``."""
        return self._add_entity("Companies", {"companyName": name, "isActive": True, **fields})

    def add_contact(self, first: str, last: str, company_id: int = 0, **fields: Any) -> dict[str, Any]:
        return self._add_entity("Contacts", {"firstName": first, "lastName": last,
                                             "companyID": company_id, "isActive": 1, **fields})

    def add_resource(self, first: str, last: str, **fields: Any) -> dict[str, Any]:
        """A resource: a technician tickets are assigned to."""
        return self._add_entity("Resources", {"firstName": first, "lastName": last,
                                              "isActive": True, **fields})

    def _add_entity(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            item_id = self._next_entity_id
            self._next_entity_id += 1
            item = {"id": item_id, **fields}
            self.entities[entity][item_id] = item
            return copy.deepcopy(item)

    def entity(self, entity: str, item_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self.entities[entity].get(item_id)
            return None if found is None else copy.deepcopy(found)

    def picklist_value(self, field: str, label: str) -> int:
        """The value of a routing picklist's label (queueID, issueType, ...), for building tickets."""
        with self._lock:
            return picklists.value_for_label(self.routing_picklists[field], label)

    def _extra_ticket_fields(self, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        unknown = sorted(set(extra or {}) - (set(TICKET_FIELDS) - READ_ONLY_FIELDS))
        if unknown:
            raise ValueError(f"unknown or read-only ticket field(s): {unknown}")
        return dict(extra or {})

    def _routing_picklist_fields(self) -> list[dict[str, Any]]:
        return [picklists.picklist_field(name, values) for name, values in self.routing_picklists.items()]

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
            before = dict(record.fields)
            for name, value in updates.items():
                if name == "status":
                    self._change_status(record, value)
                elif name == "userDefinedFields":
                    _merge_udfs(record.fields["userDefinedFields"], value)
                else:
                    record.fields[name] = value
            self._touch(record)
            self.webhooks.ticket_changed(record.fields, "Update", before, API_RESOURCE_ID)
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

    def _send_callout(self, job: _CalloutJob) -> CalloutResult | None:
        with self._lock:
            if self.hold_callouts:
                self._held.append(job)
                return None
        return self._deliver_callout(job)

    def _deliver_callout(self, job: _CalloutJob) -> CalloutResult:
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


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "noteq": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
}


def _comparable(value: Any) -> Any:
    """Times compare as instants (any offset or precision); text case-insensitively, as Autotask does."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value.casefold()
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return value


def _matches(fields: Mapping[str, Any], condition: Any) -> bool:
    """One condition of a query filter: a comparison, ``in``/``notIn``, or an and/or group."""
    if not isinstance(condition, Mapping):
        raise _ApiError("a filter condition must be an object")
    op = str(condition.get("op", "")).lower()
    if op in ("and", "or"):
        items = condition.get("items")
        if not isinstance(items, list) or not items:
            raise _ApiError(f"'{op}' needs a list of items")
        results = (_matches(fields, item) for item in items)
        return all(results) if op == "and" else any(results)
    name = _FIELD_BY_FOLDED.get(str(condition.get("field", "")).casefold())
    if name is None:
        raise _ApiError(f"unknown field {condition.get('field')!r}")
    actual = _comparable(fields.get(name))
    if op in ("in", "notin"):
        values = condition.get("value")
        if not isinstance(values, list):
            raise _ApiError(f"'{op}' needs a list value")
        found = actual in [_comparable(v) for v in values]
        return found if op == "in" else not found
    compare = _COMPARE.get(op)
    if compare is None:
        raise _ApiError(f"unsupported op {op!r}")
    try:
        return bool(compare(actual, _comparable(condition.get("value"))))
    except TypeError:
        raise _ApiError(f"cannot compare {name} with {condition.get('value')!r}") from None


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


# --- TicketWebhooks: Autotask's REST webhooks ------------------------------------------------
#
# Kept apart from the callout machinery above: the state hooks into ticket changes in
# three places (create, status, PATCH), and everything else is here.

#: The resource id of the simulated API user: what ``Resources/query`` finds for it, and
#: the ``PersonID`` of the changes it makes through the API.
API_RESOURCE_ID = 29_682_885
#: The ``PersonID`` of changes a test makes "as a person" (create_ticket, set_status).
TECHNICIAN_RESOURCE_ID = 29_683_001
FIRST_WEBHOOK_ID = 301
WEBHOOK_SECRET_MAX = 64
#: How the simulator signs: the text Autotask puts into the HMAC (see docs/autotask-webhooks.md).
SIGNING_MODES = ("escaped-compact", "escaped-raw", "raw", "none")
_WEBHOOK_FIELDS = (
    "name", "webhookUrl", "deactivationUrl", "secretKey", "isActive", "isReady",
    "isSubscribedToCreateEvents", "isSubscribedToUpdateEvents", "isSubscribedToDeleteEvents",
    "notificationEmailAddress", "ownerResourceID", "sendThresholdExceededNotification",
)
#: ``TicketWebhookFields.fieldID``: a picklist whose labels are the ticket's field names.
WEBHOOK_FIELD_IDS = {name: index for index, name in enumerate(TICKET_FIELDS, start=1)}


def dotnet_json(value: Any, separators: tuple[str, str] = (",", ":")) -> str:
    """JSON as .NET's default encoder writes it: in strings, ``&<>'"+` `` and non-ASCII as ``\\uXXXX``.

    Written apart from the bridge's own check (signatures.py), so that a mistake in
    one does not hide in the other.
    """
    item_sep, key_sep = separators
    if isinstance(value, dict):
        inner = item_sep.join(dotnet_json(str(k), separators) + key_sep + dotnet_json(v, separators)
                              for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + item_sep.join(dotnet_json(v, separators) for v in value) + "]"
    if not isinstance(value, str):
        return json.dumps(value)
    out = ['"']
    for char in value:
        if char in _DOTNET_SHORT:
            out.append(_DOTNET_SHORT[char])
        elif " " <= char <= "~" and char not in "&<>'\"+`":
            out.append(char)
        else:
            units = char.encode("utf-16-be", "surrogatepass")
            for i in range(0, len(units), 2):
                out.append("\\u" + units[i:i + 2].hex().upper())
    out.append('"')
    return "".join(out)


_DOTNET_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def hook_signature(secret: str, text: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), text, hashlib.sha1).digest()
    return "sha1=" + base64.b64encode(digest).decode("ascii")


@dataclass
class WebhookDelivery:
    """One delivery (and its retries): the same bytes and signature every attempt."""

    webhook_id: int
    guid: str
    sequence: int
    action: str
    ticket_id: int
    url: str
    body: bytes
    signature: str | None
    attempts: list[int | None] = field(default_factory=list)  # HTTP status, None: no answer
    done: bool = False

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and self.attempts[-1] is not None and 200 <= self.attempts[-1] < 300

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.signature is not None:
            headers["X-Hook-Signature"] = self.signature
        return headers

    def to_json(self) -> dict[str, Any]:
        return {"webhook_id": self.webhook_id, "guid": self.guid, "sequence": self.sequence,
                "action": self.action, "ticket_id": self.ticket_id, "attempts": self.attempts,
                "delivered": self.delivered, "done": self.done,
                "body": self.body.decode("utf-8")}


class TicketWebhooks:
    """The tenant's TicketWebhooks and their deliveries, as Autotask keeps and sends them.

    Deliveries of one webhook leave in trigger order from one thread each; a failed
    one (no 2xx) is tried again after ``retry_delay`` seconds, at most ``max_attempts``
    times, and later ones wait. After ``disable_after`` events in a row that failed,
    the webhook is deactivated and a ``Deactivated`` message goes to its deactivation URL.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.retry_delay = 30.0
        self.max_attempts = 5
        self.disable_after = 25
        self.timeout = 10.0
        self.signing = "escaped-compact"
        self.spaced = False  # send "key": value, with spaces (the signed text may then differ)
        self.resources: dict[str, int] = {DEFAULT_USER: API_RESOURCE_ID}
        self.acting_resource_id = TECHNICIAN_RESOURCE_ID
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._fields: dict[int, list[dict[str, Any]]] = {}
        self._excluded: dict[int, list[dict[str, Any]]] = {}
        self._sequence: dict[int, int] = {}
        self._failures: dict[int, int] = {}
        self._queues: dict[int, queue.Queue[WebhookDelivery | None]] = {}
        self._deliveries: list[WebhookDelivery] = []
        self._next_id = FIRST_WEBHOOK_ID
        self._next_child_id = 1

    # -- the REST entity ------------------------------------------------------------

    def create(self, body: Any) -> int:
        if not isinstance(body, Mapping):
            raise _ApiError("Request body must be a JSON object")
        unknown = sorted(set(body) - set(_WEBHOOK_FIELDS) - {"id"})
        errors = [f"Unknown field: {name}" for name in unknown]
        for name in ("name", "webhookUrl", "deactivationUrl", "secretKey"):
            if not isinstance(body.get(name), str) or not body[name]:
                errors.append(f"{name} is required")
        for name in ("webhookUrl", "deactivationUrl"):
            if isinstance(body.get(name), str) and not body[name].startswith(("https://", "http://")):
                errors.append(f"{name} must be a URL")
        if isinstance(body.get("secretKey"), str) and len(body["secretKey"]) > WEBHOOK_SECRET_MAX:
            errors.append(f"secretKey must be at most {WEBHOOK_SECRET_MAX} characters")
        if errors:
            raise _ApiError(*errors)
        with self._lock:
            webhook_id = self._next_id
            self._next_id += 1
            record = {name: body.get(name) for name in _WEBHOOK_FIELDS}
            record.update(id=webhook_id, webhookGUID=str(uuid.uuid4()),
                          isActive=body.get("isActive", True) is not False, isReady=True)
            for name in ("isSubscribedToCreateEvents", "isSubscribedToUpdateEvents",
                         "isSubscribedToDeleteEvents"):
                record[name] = bool(body.get(name, False))
            self._webhooks[webhook_id] = record
            self._fields[webhook_id], self._excluded[webhook_id] = [], []
            self._sequence[webhook_id], self._failures[webhook_id] = 0, 0
            return webhook_id

    def delete(self, webhook_id: int) -> None:
        with self._lock:
            if self._webhooks.pop(webhook_id, None) is None:
                raise _ApiError(f"TicketWebhook with id {webhook_id} does not exist", status=404)
            self._fields.pop(webhook_id, None)
            self._excluded.pop(webhook_id, None)
            sender = self._queues.pop(webhook_id, None)
        if sender is not None:
            sender.put(None)

    def add_field(self, webhook_id: int, body: Any) -> int:
        body = self._child_body(webhook_id, body)
        field_id = body.get("fieldID")
        errors = []
        if field_id not in WEBHOOK_FIELD_IDS.values():
            errors.append("fieldID must be a valid picklist value")
        for name in ("isSubscribedField", "isDisplayAlwaysField"):
            if not isinstance(body.get(name), bool):
                errors.append(f"{name} is required and must be a boolean")
        if errors:
            raise _ApiError(*errors)
        return self._add_child(self._fields, webhook_id, body)

    def exclude(self, webhook_id: int, body: Any) -> int:
        body = self._child_body(webhook_id, body)
        if body.get("resourceID") not in set(self.resources.values()) | {self.acting_resource_id}:
            raise _ApiError("resourceID must be an existing resource")
        return self._add_child(self._excluded, webhook_id, body)

    def _child_body(self, webhook_id: int, body: Any) -> Mapping[str, Any]:
        if not isinstance(body, Mapping):
            raise _ApiError("Request body must be a JSON object")
        with self._lock:
            if webhook_id not in self._webhooks:
                raise _ApiError(f"TicketWebhook with id {webhook_id} does not exist", status=404)
        if body.get("webhookID", webhook_id) != webhook_id:
            raise _ApiError("webhookID does not match the parent")
        return body

    def _add_child(self, children: dict[int, list[dict[str, Any]]], webhook_id: int,
                   body: Mapping[str, Any]) -> int:
        with self._lock:
            child_id = self._next_child_id
            self._next_child_id += 1
            children[webhook_id].append({**body, "id": child_id, "webhookID": webhook_id})
            return child_id

    def query(self, entity: str, body: Any) -> list[dict[str, Any]]:
        """``eq`` filters only (what the install command sends)."""
        conditions = body.get("filter") if isinstance(body, Mapping) else None
        if not isinstance(conditions, list) or not all(
            isinstance(c, Mapping) and c.get("op") == "eq" for c in conditions
        ):
            raise _ApiError("filter must be a list of eq conditions (the simulator knows no others)")
        with self._lock:
            if entity == "TicketWebhooks":
                items = [{k: v for k, v in w.items() if k != "secretKey"} for w in self._webhooks.values()]
            else:
                items = [{"id": rid, "userName": user, "isActive": True}
                         for user, rid in self.resources.items()]
        return [i for i in items if all(i.get(c["field"]) == c.get("value") for c in conditions)]

    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook with its fields and excluded resources (secrets left out)."""
        with self._lock:
            return [
                {**{k: v for k, v in w.items() if k != "secretKey"},
                 "fields": copy.deepcopy(self._fields[i]),
                 "excludedResources": copy.deepcopy(self._excluded[i])}
                for i, w in self._webhooks.items()
            ]

    def secret_of(self, webhook_id: int) -> str:
        """The webhook's secret key (kept out of every listing)."""
        with self._lock:
            return str(self._webhooks[webhook_id]["secretKey"])

    def configure(self, data: Mapping[str, Any]) -> None:
        numbers = ("retry_delay", "timeout")
        counts = ("max_attempts", "disable_after", "acting_resource_id")
        unknown = set(data) - {*numbers, *counts, "signing", "spaced"}
        if unknown:
            raise ValueError(f"unknown webhook settings: {sorted(unknown)}")
        for name in numbers:
            if name in data and (not isinstance(data[name], int | float) or data[name] < 0):
                raise ValueError(f"{name} must be a number >= 0")
        for name in counts:
            if name in data and (not isinstance(data[name], int) or data[name] < 1):
                raise ValueError(f"{name} must be an integer >= 1")
        if "signing" in data and data["signing"] not in SIGNING_MODES:
            raise ValueError(f"signing must be one of {SIGNING_MODES}")
        with self._lock:
            for name, value in data.items():
                setattr(self, name, bool(value) if name == "spaced" else value)

    # -- deliveries ---------------------------------------------------------------------

    def ticket_changed(self, fields: Mapping[str, Any], action: str,
                       before: Mapping[str, Any] | None, person: int) -> None:
        """Queue a delivery for every active webhook this change triggers (called under the tenant's lock)."""
        changed = {n for n in fields if before is None or before.get(n) != fields[n]}
        with self._lock:
            for webhook_id, webhook in self._webhooks.items():
                if not webhook["isActive"] or not webhook[f"isSubscribedTo{action}Events"]:
                    continue
                if any(r.get("resourceID") == person for r in self._excluded[webhook_id]):
                    continue
                names = {name: f for f in self._fields[webhook_id] for name, i in WEBHOOK_FIELD_IDS.items()
                         if i == f["fieldID"]}
                subscribed = {n for n, f in names.items() if f["isSubscribedField"]}
                if action == "Update" and not subscribed & changed:
                    continue
                sent = {n: fields.get(n) for n, f in names.items()
                        if f["isDisplayAlwaysField"] or (n in subscribed and n in changed)}
                self._sequence[webhook_id] += 1
                payload = {"Action": action, "Guid": webhook["webhookGUID"], "EntityType": "Ticket",
                           "Id": fields["id"], "Fields": sent, "EventTime": fields.get("lastActivityDate"),
                           "SequenceNumber": self._sequence[webhook_id], "PersonID": person}
                self._enqueue(webhook_id, webhook, payload)

    def _enqueue(self, webhook_id: int, webhook: Mapping[str, Any], payload: dict[str, Any]) -> None:
        separators = (", ", ": ") if self.spaced else (",", ":")
        body = json.dumps(payload, ensure_ascii=False, separators=separators).encode("utf-8")
        signed = {"raw": body, "escaped-raw": dotnet_json(payload, separators).encode("ascii"),
                  "escaped-compact": dotnet_json(payload).encode("ascii")}.get(self.signing)
        delivery = WebhookDelivery(
            webhook_id, webhook["webhookGUID"], payload["SequenceNumber"], payload["Action"],
            payload["Id"], webhook["webhookUrl"], body,
            None if signed is None else hook_signature(webhook["secretKey"], signed),
        )
        self._deliveries.append(delivery)
        sender = self._queues.get(webhook_id)
        if sender is None:
            sender = self._queues[webhook_id] = queue.Queue()
            threading.Thread(target=self._send_all, args=(webhook_id, sender),
                             name=f"sim-webhook-{webhook_id}", daemon=True).start()
        sender.put(delivery)

    def _send_all(self, webhook_id: int, sender: queue.Queue[WebhookDelivery | None]) -> None:
        while (delivery := sender.get()) is not None:
            for attempt in range(self.max_attempts):
                if attempt:
                    time.sleep(self.retry_delay)
                status = self.post(delivery)
                with self._cond:
                    delivery.attempts.append(status)
                    self._cond.notify_all()
                if delivery.delivered:
                    break
            with self._cond:
                failures = 0 if delivery.delivered else self._failures.get(webhook_id, 0) + 1
                self._failures[webhook_id] = failures
                webhook = self._webhooks.get(webhook_id)
                deactivate = webhook is not None and failures >= self.disable_after and webhook["isActive"]
                if deactivate and webhook is not None:
                    webhook["isActive"] = False
            if deactivate and webhook is not None:
                self._deactivated(webhook)
            with self._cond:
                delivery.done = True
                self._cond.notify_all()
            if deactivate:
                break
        with self._cond:  # deactivated or deleted: what is still queued is never sent
            if self._queues.get(webhook_id) is sender:
                del self._queues[webhook_id]
            while not sender.empty():
                left = sender.get_nowait()
                if left is not None:
                    left.done = True
            self._cond.notify_all()

    def post(self, delivery: WebhookDelivery) -> int | None:
        """Send one attempt of a delivery (also what ``redeliver`` uses); its HTTP status."""
        try:
            return requests.post(delivery.url, data=delivery.body, headers=delivery.headers(),
                                 timeout=self.timeout).status_code
        except requests.RequestException:
            return None

    def redeliver(self, sequence: int, webhook_id: int | None = None) -> int | None:
        """Send a delivery again, byte for byte, as Autotask does when an answer came too late."""
        with self._lock:
            found = [d for d in self._deliveries if d.sequence == sequence
                     and (webhook_id is None or d.webhook_id == webhook_id)]
        if not found:
            raise KeyError(f"no delivery {sequence}")
        status = self.post(found[-1])
        with self._cond:
            found[-1].attempts.append(status)
            self._cond.notify_all()
        return status

    def _deactivated(self, webhook: Mapping[str, Any]) -> None:
        body = json.dumps({"Action": "Deactivated", "Guid": webhook["webhookGUID"], "EntityType": "Ticket",
                           "Id": webhook["id"]}).encode("utf-8")
        with suppress(requests.RequestException):  # unsigned, as Autotask may send it
            requests.post(webhook["deactivationUrl"], data=body,
                          headers={"Content-Type": "application/json"}, timeout=self.timeout)

    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Every delivery once at least ``count`` are done (delivered or given up); TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: sum(d.done for d in self._deliveries) >= count, timeout):
                done = sum(d.done for d in self._deliveries)
                raise TimeoutError(f"{done} webhook deliveries done, waited for {count}")
            return list(self._deliveries)

    def reset(self) -> None:
        with self._lock:
            self._deliveries.clear()


def _add_webhook_routes(app: Flask, sim: AutotaskState) -> None:
    hooks = sim.webhooks

    @app.post(f"{API_PREFIX}/TicketWebhooks")
    def create_ticket_webhook() -> Response:
        return json_response({"itemId": hooks.create(g.sim_json)})

    @app.delete(f"{API_PREFIX}/TicketWebhooks/<int:webhook_id>")
    def delete_ticket_webhook(webhook_id: int) -> Response:
        hooks.delete(webhook_id)
        return json_response({"itemId": webhook_id})

    @app.post(f"{API_PREFIX}/TicketWebhooks/<int:webhook_id>/Fields")
    def add_ticket_webhook_field(webhook_id: int) -> Response:
        return json_response({"itemId": hooks.add_field(webhook_id, g.sim_json)})

    @app.post(f"{API_PREFIX}/TicketWebhooks/<int:webhook_id>/ExcludedResources")
    def exclude_ticket_webhook_resource(webhook_id: int) -> Response:
        return json_response({"itemId": hooks.exclude(webhook_id, g.sim_json)})

    @app.post(f"{API_PREFIX}/<any(TicketWebhooks, Resources):entity>/query")
    def query_webhook_entities(entity: str) -> Response:
        items = hooks.query(entity, g.sim_json)
        return json_response({"items": items, "pageDetails": {
            "count": len(items), "requestCount": 500, "prevPageUrl": None, "nextPageUrl": None}})

    @app.get(f"{API_PREFIX}/TicketWebhookFields/entityInformation/fields")
    def ticket_webhook_fields() -> Response:
        values = [{"value": str(i), "label": name, "isActive": True, "isSystem": True,
                   "isDefaultValue": False, "sortOrder": i} for name, i in WEBHOOK_FIELD_IDS.items()]
        return json_response({"fields": [{"name": "fieldID", "isPickList": True, "picklistValues": values}]})

    @app.get("/_sim/webhooks")
    def sim_webhooks() -> Response:
        return json_response({"webhooks": hooks.webhooks(),
                              "deliveries": [d.to_json() for d in hooks.deliveries()]})

    @app.post("/_sim/webhooks/config")
    def sim_webhook_config() -> Response:
        hooks.configure(_sim_json())
        return json_response({"ok": True})

    @app.post("/_sim/webhooks/redeliver/<int:sequence>")
    def sim_redeliver(sequence: int) -> Response:
        return json_response({"status_code": hooks.redeliver(sequence)})


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

    @app.post(f"{API_PREFIX}/Tickets/query")
    def query_tickets() -> Response:
        return json_response(sim.query_tickets(g.sim_json, 0, request.host_url.rstrip("/")))

    @app.post(f"{API_PREFIX}/Tickets/query/next")
    def query_tickets_next() -> Response:
        page = request.args.get("page", "")
        if not page.isdigit():
            raise _ApiError("invalid page")
        return json_response(sim.query_tickets(g.sim_json, int(page), request.host_url.rstrip("/")))

    _add_entity_endpoints(app, sim)

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

    @app.post("/_sim/callouts/release")
    def sim_release_callouts() -> Response:
        return json_response([r.to_json() for r in sim.release_callouts()])

    @app.post("/_sim/callouts/drop")
    def sim_drop_callouts() -> Response:
        return json_response({"dropped": sim.drop_callouts()})

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

    _add_webhook_routes(app, sim)
    return app


def _add_entity_endpoints(app: Flask, sim: AutotaskState) -> None:
    """``GET Companies/{id}``, ``Contacts/{id}`` and ``Resources/{id}``: ``{"item": null}`` if none."""

    def answer(entity: str, item_id: int) -> Response:
        return json_response({"item": sim.entity(entity, item_id)})

    for entity in ENTITY_NAMES:
        app.add_url_rule(
            f"{API_PREFIX}/{entity}/<int:item_id>",
            endpoint=f"get_{entity.lower()}",
            view_func=lambda item_id, entity=entity: answer(entity, item_id),
            methods=["GET"],
        )


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
