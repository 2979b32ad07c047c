"""A local stand-in for ilert's Events API (``POST /api/events``).

It keeps alerts the way ilert does (one open alert per alert key, keys trimmed and
compared case-insensitively) so tests can assert outcomes, not just requests, and it
misbehaves on demand: latency, 5xx, dropped connections, rate limits.

It also plays the other direction: a Webhook alert action (``webhook_url``) that
POSTs ilert's default webhook body on every alert status change, and people acting
in ilert (``accept``/``resolve``, or ``POST /_sim/alerts/<key>/accept|resolve``).

Run it alone with ``python -m flask_autotask_ilert.testing.ilert_sim --port 0
--port-file F``; everything is then controllable over ``/_sim/...``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

import requests
from flask import Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .servers import FaultInjector, fault_response, json_response, run_main

__all__ = [
    "ACCEPTED",
    "DEFAULT_ALERT_SOURCE",
    "DEFAULT_PERSON",
    "PENDING",
    "RESOLVED",
    "Alert",
    "IlertState",
    "NoOpenAlertError",
    "RateLimit",
    "ReceivedEvent",
    "TransitionNotAllowedError",
    "WebhookDelivery",
    "create_ilert_simulator",
    "main",
]

PENDING = "PENDING"
ACCEPTED = "ACCEPTED"
RESOLVED = "RESOLVED"
OPEN_STATUSES = frozenset({PENDING, ACCEPTED})

EVENT_TYPES = ("ALERT", "ACCEPT", "RESOLVE", "COMMENT")
PRIORITIES = ("HIGH", "LOW")

WEBHOOK_STYLES = ("alert", "incident")
# eventType of the default webhook body per new status, in both spellings seen.
WEBHOOK_EVENT_TYPES = {
    "alert": {PENDING: "alert-created", ACCEPTED: "alert-acknowledged", RESOLVED: "alert-resolved"},
    "incident": {
        PENDING: "incident-created",
        ACCEPTED: "incident-acknowledged",
        RESOLVED: "incident-resolved",
    },
}
DEFAULT_ALERT_SOURCE: dict[str, Any] = {"id": 2101194, "name": "Autotask"}
# The person of tests/data/ilert-webhook-*.json; ``by="jdoe"`` means her.
DEFAULT_PERSON: dict[str, str] = {
    "username": "jdoe",
    "email": "jdoe@example.com",
    "firstName": "Jane",
    "lastName": "Doe",
}
PERSON_FIELDS = ("username", "email", "firstName", "lastName")

NO_ALERT_SOURCE = {
    "status": 404,
    "message": "No alert source found for the integration key",
    "code": "NO_ALERT_SOURCE_FOUND",
}


@dataclass(frozen=True)
class ReceivedEvent:
    """One request to the Events API as received, with the status it got.

    ``status_code`` is None when the simulator dropped the connection instead of
    answering.
    """

    seq: int
    at: float
    body: dict[str, Any]
    status_code: int | None

    @property
    def accepted(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "body": self.body, "status_code": self.status_code}


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST of the webhook alert action, as sent, with how the receiver answered.

    ``status`` is the alert status the webhook reports; ``status_code`` is None (and
    ``error`` says why) when the receiver could not be reached or timed out. ``at``
    is ``time.monotonic()`` when the delivery finished.
    """

    seq: int
    at: float
    alert_key: str | None
    status: str
    status_code: int | None
    body: dict[str, Any]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "alert_key": self.alert_key,
            "status": self.status,
            "status_code": self.status_code,
            "body": copy.deepcopy(self.body),
            "error": self.error,
        }


class NoOpenAlertError(KeyError):
    """A person acted on an alert key with no open alert (HTTP 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no open alert"


class TransitionNotAllowedError(ValueError):
    """A person action the alert's status does not allow, e.g. accepting twice (HTTP 409)."""


@dataclass
class Alert:
    id: int
    key: str | None
    integration_key: str
    status: str
    summary: str
    priority: str
    history: list[str] = field(default_factory=list)
    created_event: dict[str, Any] = field(default_factory=dict)
    details: str = ""
    # ISO 8601 UTC with milliseconds, as in the webhook's reportTime.
    report_time: str = ""
    # Who the webhook names in assignedTo: the last person who acted, if any.
    assigned_to: dict[str, Any] | None = None
    accepted_by: dict[str, Any] | None = None
    resolved_by: dict[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "integration_key": self.integration_key,
            "status": self.status,
            "summary": self.summary,
            "priority": self.priority,
            "history": list(self.history),
            "created_event": copy.deepcopy(self.created_event),
            "details": self.details,
            "report_time": self.report_time,
            "assigned_to": copy.deepcopy(self.assigned_to),
            "accepted_by": copy.deepcopy(self.accepted_by),
            "resolved_by": copy.deepcopy(self.resolved_by),
        }

    def _copy(self) -> Alert:
        return replace(
            self,
            history=list(self.history),
            created_event=copy.deepcopy(self.created_event),
            assigned_to=copy.deepcopy(self.assigned_to),
            accepted_by=copy.deepcopy(self.accepted_by),
            resolved_by=copy.deepcopy(self.resolved_by),
        )


@dataclass(frozen=True)
class _WebhookJob:
    """A webhook built when the status changed, waiting for the delivery thread."""

    generation: int
    alert_key: str | None
    status: str
    body: dict[str, Any]
    url: str
    headers: dict[str, str]
    auth: tuple[str, str] | None
    timeout: float


@dataclass(frozen=True)
class RateLimit:
    """At most ``events`` accepted events per integration key in any ``per_seconds``."""

    events: int
    per_seconds: float

    @classmethod
    def parse(cls, data: Mapping[str, Any] | RateLimit) -> RateLimit:
        if isinstance(data, RateLimit):
            return data
        events, per = data.get("events"), data.get("per_seconds")
        if isinstance(events, bool) or not isinstance(events, int) or events < 1:
            raise ValueError("rate_limit.events must be a positive integer")
        if isinstance(per, bool) or not isinstance(per, (int, float)) or per <= 0:
            raise ValueError("rate_limit.per_seconds must be a positive number")
        return cls(events, float(per))


def _error(status: int, message: str, code: str) -> dict[str, Any]:
    return {"status": status, "message": message, "code": code}


def _default_error(status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _error(status, phrase, phrase.upper().replace(" ", "_").replace("-", "_"))


def _fold(key: str) -> str:
    return key.strip().casefold()


def _report_time(dt: datetime) -> str:
    """``2019-10-29T18:15:02.551Z``: UTC, milliseconds, as ilert writes reportTime."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _person(by: str | Mapping[str, Any]) -> dict[str, Any]:
    """The ``assignedTo`` object for a person given as a username or a partial object.

    ``"jdoe"`` is the person of the sample webhooks; another username gets
    ``<username>@example.com`` and the username as first name. Missing fields of an
    object are filled the same way; unknown fields are refused (typos).
    """
    if isinstance(by, str):
        if not by.strip():
            raise ValueError("by must be a non-empty username")
        if by == DEFAULT_PERSON["username"]:
            return dict(DEFAULT_PERSON)
        return {"username": by, "email": f"{by}@example.com", "firstName": by, "lastName": ""}
    if not isinstance(by, Mapping):
        raise ValueError("by must be a username or an object with a username")
    unknown = set(by) - set(PERSON_FIELDS)
    if unknown:
        raise ValueError(f"unknown person fields: {sorted(unknown)}; allowed: {list(PERSON_FIELDS)}")
    username = by.get("username")
    if not isinstance(username, str) or not username.strip():
        raise ValueError("by.username must be a non-empty string")
    for name in PERSON_FIELDS[1:]:
        if name in by and by[name] is not None and not isinstance(by[name], str):
            raise ValueError(f"by.{name} must be a string or null")
    person = _person(username)
    person.update({k: by[k] for k in PERSON_FIELDS if k in by})
    return person


def _webhook_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("webhook_headers must map header names to strings")
    return dict(value)


def _webhook_auth(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise ValueError("webhook_auth must be [username, password] or null")
    return (value[0], value[1])


class IlertState(FaultInjector):
    """Alerts, received events and fault settings of one simulated ilert.

    Thread-safe: the server answers concurrently and tests read from their own
    thread. Accessors return copies so a test never sees an alert change under it.
    """

    def __init__(
        self,
        integration_keys: Iterable[str] = (),
        *,
        seed: int | None = None,
        public_url: str | None = None,
    ) -> None:
        super().__init__(("503", "reset"))
        # Empty means "any key is an alert source", which keeps quick tests short.
        self.integration_keys: set[str] = set(integration_keys)
        # Base of alertUrl; the address the request came to when None.
        self.public_url = public_url
        self.rate_limit: RateLimit | None = None
        self.seed = seed
        self._events: list[ReceivedEvent] = []
        self._alerts: list[Alert] = []
        self._open: dict[tuple[str, str], Alert] = {}
        self._windows: dict[str, deque[float]] = {}
        # Never reset: an alert id is never reused, as in ilert.
        self._last_alert_id = 0
        # The Webhook alert action; off while webhook_url is None.
        self.webhook_url: str | None = None
        self.webhook_headers: dict[str, str] = {}
        self.webhook_auth: tuple[str, str] | None = None
        self._webhook_event_style = "alert"
        self._webhook_repeat = 1
        self.webhook_timeout = 2.0
        self.alert_source: dict[str, Any] = dict(DEFAULT_ALERT_SOURCE)
        self._webhook_cond = threading.Condition(self._lock)
        self._webhook_queue: deque[_WebhookJob] = deque()
        self._webhooks: list[WebhookDelivery] = []
        self._webhook_in_flight = False
        self._webhook_worker: threading.Thread | None = None
        # Bumped by reset(): a delivery in flight across a reset is not recorded.
        self._webhook_generation = 0

    @property
    def webhook_event_style(self) -> str:
        """Webhook body spelling: "alert" (``alert-*``, string id) or "incident" (numeric id)."""
        return self._webhook_event_style

    @webhook_event_style.setter
    def webhook_event_style(self, value: str) -> None:
        if value not in WEBHOOK_STYLES:
            raise ValueError(f"webhook_event_style must be one of {WEBHOOK_STYLES}")
        self._webhook_event_style = value

    @property
    def webhook_repeat(self) -> int:
        """How many times each webhook is sent; ilert users report 2-3 deliveries."""
        return self._webhook_repeat

    @webhook_repeat.setter
    def webhook_repeat(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
            raise ValueError("webhook_repeat must be an integer from 1 to 10")
        self._webhook_repeat = value

    # --- inspection ----------------------------------------------------------------

    def events(self) -> list[ReceivedEvent]:
        with self._lock:
            return list(self._events)

    def accepted_events(self) -> list[ReceivedEvent]:
        with self._lock:
            return [e for e in self._events if e.accepted]

    def alerts(self) -> list[Alert]:
        with self._lock:
            return [a._copy() for a in self._alerts]

    def alert_for(self, key: str, integration_key: str | None = None) -> Alert | None:
        """The newest alert with this alert key, compared the way ilert compares."""
        folded = _fold(key)
        with self._lock:
            for alert in reversed(self._alerts):
                if alert.key is None or _fold(alert.key) != folded:
                    continue
                if integration_key is None or alert.integration_key == integration_key:
                    return alert._copy()
        return None

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            counts = dict.fromkeys((PENDING, ACCEPTED, RESOLVED), 0)
            for alert in self._alerts:
                counts[alert.status] = counts.get(alert.status, 0) + 1
            return counts

    def webhooks(self) -> list[WebhookDelivery]:
        """Webhook deliveries made so far, in the order they were sent."""
        with self._lock:
            return list(self._webhooks)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no webhook is queued or in flight; False if ``timeout`` ran out."""
        with self._webhook_cond:
            return self._webhook_cond.wait_for(
                lambda: not self._webhook_queue and not self._webhook_in_flight, timeout
            )

    def reset(self) -> None:
        """Forget events, alerts, webhooks and faults; keep the configuration.

        Queued webhooks are dropped; one already in flight finishes (bounded by
        ``webhook_timeout``) but is not recorded.
        """
        with self._webhook_cond:
            self._events.clear()
            self._alerts.clear()
            self._open.clear()
            self._windows.clear()
            self._webhooks.clear()
            self._webhook_queue.clear()
            self._webhook_generation += 1
            self.rate_limit = None
            self.clear_faults()
            self._webhook_cond.notify_all()

    # --- people acting in ilert ------------------------------------------------------

    def accept(
        self, alert_key: str, by: str | Mapping[str, Any] = "jdoe", *, integration_key: str | None = None
    ) -> Alert:
        """A person accepts (acknowledges) the open alert with this key in ilert's UI.

        Allowed only from PENDING. Raises NoOpenAlertError (a KeyError) when no alert
        with the key is open, TransitionNotAllowedError (a ValueError) when it is
        already accepted, ValueError for a malformed ``by``. Returns a copy.
        """
        return self._person_action(alert_key, by, ACCEPTED, integration_key)

    def resolve(
        self, alert_key: str, by: str | Mapping[str, Any] = "jdoe", *, integration_key: str | None = None
    ) -> Alert:
        """A person resolves the open (PENDING or ACCEPTED) alert with this key."""
        return self._person_action(alert_key, by, RESOLVED, integration_key)

    def _person_action(
        self, alert_key: str, by: str | Mapping[str, Any], status: str, integration_key: str | None
    ) -> Alert:
        person = _person(by)
        folded = _fold(alert_key)
        with self._lock:
            # The newest open alert with the key: one per integration key can be open.
            candidates = [
                alert
                for (ikey, key), alert in self._open.items()
                if key == folded and (integration_key is None or ikey == integration_key)
            ]
            if not candidates:
                raise NoOpenAlertError(f"no open alert with key {alert_key!r}")
            alert = max(candidates, key=lambda a: a.id)
            allowed = (PENDING,) if status == ACCEPTED else (PENDING, ACCEPTED)
            if alert.status not in allowed:
                verb = "accept" if status == ACCEPTED else "resolve"
                raise TransitionNotAllowedError(
                    f"cannot {verb} alert {alert.id} ({alert.key}): it is {alert.status}"
                )
            if status == ACCEPTED:
                alert.accepted_by = person
            else:
                alert.resolved_by = person
            alert.assigned_to = dict(person)
            self._set_status(alert, status)
            return alert._copy()

    # --- faults ----------------------------------------------------------------------

    def configure_faults(self, data: Mapping[str, Any]) -> None:
        limit: RateLimit | None = None
        if "rate_limit" in data and data["rate_limit"] is not None:
            raw = data["rate_limit"]
            if not isinstance(raw, Mapping):
                raise ValueError("rate_limit must be an object or null")
            limit = RateLimit.parse(raw)
        rest = {k: v for k, v in data.items() if k != "rate_limit"}
        with self._lock:
            super().configure_faults(rest)
            if "rate_limit" in data:
                self.rate_limit = limit

    def faults_json(self) -> dict[str, Any]:
        with self._lock:
            out = super().faults_json()
            limit = self.rate_limit
            out["rate_limit"] = None
            if limit is not None:
                out["rate_limit"] = {"events": limit.events, "per_seconds": limit.per_seconds}
            return out

    def _fault_keys(self) -> set[str]:
        return super()._fault_keys() | {"rate_limit"}

    # --- the Events API --------------------------------------------------------------

    def record(self, body: dict[str, Any], status_code: int | None) -> None:
        """Log a request answered outside ``receive`` (a fault); it changes nothing else."""
        with self._lock:
            self._record(body, status_code)

    def receive(
        self, body: dict[str, Any] | None, *, base_url: str, raw: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Process one event atomically: validate, rate-limit, apply, record.

        ``body`` is None when the request was not a JSON object; ``raw`` is what gets
        recorded then. Returns status, JSON body and extra headers.
        """
        with self._lock:
            status, answer, headers = self._process(body, base_url.rstrip("/"))
            self._record(body if body is not None else (raw or {}), status)
            return status, answer, headers

    def _record(self, body: dict[str, Any], status_code: int | None) -> None:
        self._events.append(
            ReceivedEvent(len(self._events) + 1, time.monotonic(), copy.deepcopy(body), status_code)
        )

    def _process(
        self, body: dict[str, Any] | None, base_url: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if body is None:
            return 400, _error(400, "Body must be a JSON object", "BAD_REQUEST"), {}
        ikey = body.get("integrationKey") or body.get("apiKey")
        if not isinstance(ikey, str) or not ikey.strip():
            return 400, _error(400, "integrationKey is required", "BAD_REQUEST"), {}
        if self.integration_keys and ikey not in self.integration_keys:
            return 404, dict(NO_ALERT_SOURCE), {}
        retry_after = self._take_rate_slot(ikey)
        if retry_after is not None:
            return (
                429,
                _error(429, "Too many requests", "RATE_LIMIT"),
                {"Retry-After": str(retry_after)},
            )

        event_type = body.get("eventType")
        if event_type not in EVENT_TYPES:
            return 400, _error(400, f"eventType must be one of {EVENT_TYPES}", "BAD_REQUEST"), {}
        raw_key = body.get("alertKey")
        if raw_key is not None and not isinstance(raw_key, str):
            return 400, _error(400, "alertKey must be a string", "BAD_REQUEST"), {}
        alert_key = raw_key.strip() if raw_key and raw_key.strip() else None

        if event_type == "ALERT":
            return self._alert(ikey, alert_key, body, base_url)
        if alert_key is None:
            return 400, _error(400, f"alertKey is required for {event_type}", "BAD_REQUEST"), {}
        alert = self._open.get((ikey, _fold(alert_key)))
        if alert is None:
            message = f"No open alert with key {alert_key}"
            return 400, _error(400, message, "NO_OPEN_ALERT_WITH_KEY"), {}
        alert.history.append(event_type)
        if event_type == "ACCEPT":
            if alert.status == PENDING:
                self._set_status(alert, ACCEPTED)
            code = "INCIDENT_ACCEPTED"
        elif event_type == "RESOLVE":
            self._set_status(alert, RESOLVED)
            code = "INCIDENT_RESOLVED"
        else:
            code = "INCIDENT_UPDATED"
        return 202, self._success(alert, base_url, code), {}

    def _alert(
        self, ikey: str, alert_key: str | None, body: dict[str, Any], base_url: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        summary = body.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            return 400, _error(400, "summary is required", "BAD_REQUEST"), {}
        priority = body.get("priority", "HIGH")
        if priority not in PRIORITIES:
            return 400, _error(400, f"priority must be one of {PRIORITIES}", "BAD_REQUEST"), {}
        if alert_key is not None:
            existing = self._open.get((ikey, _fold(alert_key)))
            if existing is not None:
                existing.history.append("ALERT")
                return 202, self._success(existing, base_url, "INCIDENT_UPDATED"), {}
        details = body.get("details")
        self._last_alert_id += 1
        alert = Alert(
            id=self._last_alert_id,
            key=alert_key,
            integration_key=ikey,
            status=PENDING,
            summary=summary,
            priority=str(priority),
            history=["ALERT"],
            created_event=copy.deepcopy(body),
            details=details if isinstance(details, str) else "",
            report_time=_report_time(datetime.now(timezone.utc)),
        )
        self._alerts.append(alert)
        self._set_status(alert, PENDING)  # creation is a status change too
        return 202, self._success(alert, base_url, "NEW_INCIDENT_CREATED"), {}

    def _set_status(self, alert: Alert, status: str) -> None:
        """The one place an alert changes status, so reactions to it live here too.

        Called with the lock held, for a new alert (PENDING) and for every real
        change; it queues the webhook, which the delivery thread sends later.
        """
        alert.status = status
        if alert.key is not None:
            slot = (alert.integration_key, _fold(alert.key))
            if status in OPEN_STATUSES:
                self._open[slot] = alert
            elif self._open.get(slot) is alert:
                del self._open[slot]
        self._queue_webhook(alert)

    # --- the webhook alert action ------------------------------------------------------

    def webhook_body(self, alert: Alert) -> dict[str, Any]:
        """ilert's default webhook body for ``alert`` as it is now."""
        with self._lock:
            style = self.webhook_event_style
            return {
                "id": alert.id if style == "incident" else str(alert.id),
                "status": alert.status,
                "summary": alert.summary,
                "details": alert.details,
                "reportTime": alert.report_time,
                "eventType": WEBHOOK_EVENT_TYPES[style][alert.status],
                "priority": alert.priority,
                "alertKey": alert.key,
                "alertSource": copy.deepcopy(self.alert_source),
                "assignedTo": copy.deepcopy(alert.assigned_to),
            }

    def _queue_webhook(self, alert: Alert) -> None:
        """Snapshot the webhook now (ilert builds it when the alert changes) and queue it."""
        url = self.webhook_url
        if not url:
            return
        job = _WebhookJob(
            generation=self._webhook_generation,
            alert_key=alert.key,
            status=alert.status,
            body=self.webhook_body(alert),
            url=url,
            headers=dict(self.webhook_headers),
            auth=self.webhook_auth,
            timeout=self.webhook_timeout,
        )
        with self._webhook_cond:
            self._webhook_queue.extend([job] * self.webhook_repeat)
            worker = self._webhook_worker
            if worker is None or not worker.is_alive():
                worker = threading.Thread(
                    target=self._deliver_webhooks, name="sim-ilert-webhooks", daemon=True
                )
                self._webhook_worker = worker
                worker.start()  # under the lock, so it cannot exit before it is recorded
            self._webhook_cond.notify_all()

    def _deliver_webhooks(self) -> None:
        """The one delivery thread: sends queued webhooks in order, then exits when idle."""
        while True:
            with self._webhook_cond:
                if not self._webhook_queue:
                    if self._webhook_worker is threading.current_thread():
                        self._webhook_worker = None
                    self._webhook_cond.notify_all()
                    return
                job = self._webhook_queue.popleft()
                self._webhook_in_flight = True
            status_code: int | None = None
            error: str | None = None
            try:
                answer = requests.post(
                    job.url, json=job.body, headers=job.headers, auth=job.auth, timeout=job.timeout
                )
                status_code = answer.status_code
                answer.close()
            except Exception as exc:  # recorded, never retried: the thread must go on
                error = f"{type(exc).__name__}: {exc}"
            finally:
                with self._webhook_cond:
                    self._webhook_in_flight = False
                    if job.generation == self._webhook_generation:
                        self._webhooks.append(
                            WebhookDelivery(
                                seq=len(self._webhooks) + 1,
                                at=time.monotonic(),
                                alert_key=job.alert_key,
                                status=job.status,
                                status_code=status_code,
                                body=job.body,
                                error=error,
                            )
                        )
                    self._webhook_cond.notify_all()

    def _success(self, alert: Alert, base_url: str, code: str) -> dict[str, Any]:
        base = (self.public_url or base_url).rstrip("/")
        url = f"{base}/alerts/{alert.id}"
        return {"alertKey": alert.key, "alertUrl": url, "responseCode": code}

    def _take_rate_slot(self, ikey: str) -> int | None:
        """Count this request against its key; seconds to wait if the window is full.

        A sliding window: refused requests do not count, so a client that honours
        Retry-After gets through when it retries.
        """
        limit = self.rate_limit
        if limit is None:
            return None
        now = time.monotonic()
        window = self._windows.setdefault(ikey, deque())
        while window and window[0] <= now - limit.per_seconds:
            window.popleft()
        if len(window) >= limit.events:
            return max(1, math.ceil(window[0] + limit.per_seconds - now))
        window.append(now)
        return None

    def _configure(self, data: Mapping[str, Any]) -> None:
        allowed = {
            "integration_keys",
            "public_url",
            "webhook_url",
            "webhook_headers",
            "webhook_auth",
            "webhook_event_style",
            "webhook_repeat",
            "webhook_timeout",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        if "webhook_url" in data:
            if data["webhook_url"] is not None and not isinstance(data["webhook_url"], str):
                raise ValueError("webhook_url must be a string or null")
            changes["webhook_url"] = data["webhook_url"] or None
        if "webhook_headers" in data:
            changes["webhook_headers"] = _webhook_headers(data["webhook_headers"])
        if "webhook_auth" in data:
            changes["webhook_auth"] = _webhook_auth(data["webhook_auth"])
        if "webhook_event_style" in data:
            if data["webhook_event_style"] not in WEBHOOK_STYLES:
                raise ValueError(f"webhook_event_style must be one of {WEBHOOK_STYLES}")
            changes["webhook_event_style"] = data["webhook_event_style"]
        if "webhook_repeat" in data:
            repeat = data["webhook_repeat"]
            if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 10:
                raise ValueError("webhook_repeat must be an integer from 1 to 10")
            changes["webhook_repeat"] = repeat
        if "webhook_timeout" in data:
            timeout = data["webhook_timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise ValueError("webhook_timeout must be a positive number")
            changes["webhook_timeout"] = float(timeout)
        keys = data.get("integration_keys")
        if "integration_keys" in data and (
            not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
        ):
            raise ValueError("integration_keys must be a list of strings")
        url = data.get("public_url")
        if url is not None and not isinstance(url, str):
            raise ValueError("public_url must be a string or null")
        with self._lock:
            if isinstance(keys, list):
                self.integration_keys = set(keys)
            if "public_url" in data:
                self.public_url = url
            for key, value in changes.items():
                setattr(self, key, value)

    def config_json(self) -> dict[str, Any]:
        """Configuration as JSON, without secrets: header values and password stay out."""
        with self._lock:
            return {
                "integration_keys": sorted(self.integration_keys),
                "public_url": self.public_url,
                "webhook_url": self.webhook_url,
                "webhook_headers": sorted(self.webhook_headers),
                "webhook_auth": self.webhook_auth is not None,
                "webhook_event_style": self.webhook_event_style,
                "webhook_repeat": self.webhook_repeat,
                "webhook_timeout": self.webhook_timeout,
            }


def _parse_body(raw: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The JSON object in ``raw`` (or None), and what to record for it."""
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed, parsed
    return None, {"_raw": raw[:2000].decode("utf-8", "replace")}


def _sim_json(*, optional: bool = False) -> Mapping[str, Any]:
    if optional and not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, Mapping):
        raise ValueError("body must be a JSON object")
    return data


def create_ilert_simulator(state: IlertState | None = None) -> Flask:
    """A Flask app answering like ilert's Events API, state in ``extensions["ilert_sim"]``."""
    sim = state if state is not None else IlertState()
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True  # a simulator bug must fail loudly
    app.extensions["ilert_sim"] = sim

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return json_response(_default_error(status), status)

    @app.errorhandler(ValueError)
    def _bad_sim_request(exc: ValueError) -> Response:
        return json_response({"error": str(exc)}, 400)

    @app.post("/api/events")
    def post_event() -> Response:
        raw = request.get_data()
        body, recorded = _parse_body(raw)
        sim._sleep_latency()
        fault = sim.next_fault()
        if fault is not None:
            answer = fault_response(
                fault,
                request.environ,
                _default_error,
                lambda status: sim.record(recorded, status),
            )
            if answer is not None:
                return answer
        if request.mimetype != "application/json":
            message = "Content-Type must be application/json"
            sim.record(recorded, 415)
            return json_response(_error(415, message, "UNSUPPORTED_MEDIA_TYPE"), 415)
        status, answer_body, headers = sim.receive(body, base_url=request.host_url, raw=recorded)
        return json_response(answer_body, status, headers)

    @app.get("/_sim/events")
    def sim_events() -> Response:
        return json_response([e.to_json() for e in sim.events()])

    @app.get("/_sim/alerts")
    def sim_alerts() -> Response:
        return json_response([a.to_json() for a in sim.alerts()])

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

    @app.post("/_sim/config")
    def sim_config() -> Response:
        sim._configure(_sim_json())
        return json_response(sim.config_json())

    @app.get("/_sim/webhooks")
    def sim_webhooks() -> Response:
        return json_response([w.to_json() for w in sim.webhooks()])

    @app.post("/_sim/webhooks/wait_idle")
    def sim_webhooks_wait_idle() -> Response:
        timeout = _sim_json(optional=True).get("timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 60:
            raise ValueError("timeout must be a number of seconds up to 60")
        return json_response({"idle": sim.wait_idle(float(timeout))})

    def person_action(alert_key: str, action: str) -> Response:
        data = _sim_json(optional=True)
        unknown = set(data) - {"by", "integration_key"}
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        by = data.get("by", "jdoe")
        ikey = data.get("integration_key")
        if ikey is not None and not isinstance(ikey, str):
            raise ValueError("integration_key must be a string or null")
        act = sim.accept if action == "accept" else sim.resolve
        try:
            alert = act(alert_key, by, integration_key=ikey)
        except NoOpenAlertError as exc:
            return json_response({"error": str(exc)}, 404)
        except TransitionNotAllowedError as exc:
            return json_response({"error": str(exc)}, 409)
        return json_response(alert.to_json())

    @app.post("/_sim/alerts/<path:alert_key>/accept")
    def sim_accept(alert_key: str) -> Response:
        return person_action(alert_key, "accept")

    @app.post("/_sim/alerts/<path:alert_key>/resolve")
    def sim_resolve(alert_key: str) -> Response:
        return person_action(alert_key, "resolve")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--integration-key",
            action="append",
            default=[],
            help="accept only these keys (repeatable); any key when omitted",
        )
        parser.add_argument("--seed", type=int, help="seed for fail_rate")

    def factory(args: argparse.Namespace) -> Flask:
        return create_ilert_simulator(IlertState(args.integration_key, seed=args.seed))

    return run_main(argv, factory, description="Simulated ilert Events API", add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
