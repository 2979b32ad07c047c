"""A local stand-in for ilert's Events API (``POST /api/events``).

It keeps alerts the way ilert does (one open alert per alert key, keys trimmed and
compared case-insensitively) so tests can assert outcomes, not just requests, and it
misbehaves on demand: latency, 5xx, dropped connections, rate limits.

Run it alone with ``python -m flask_autotask_ilert.testing.ilert_sim --port 0
--port-file F``; everything is then controllable over ``/_sim/...``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .servers import FaultInjector, fault_response, json_response, run_main

__all__ = [
    "ACCEPTED",
    "PENDING",
    "RESOLVED",
    "Alert",
    "IlertState",
    "RateLimit",
    "ReceivedEvent",
    "create_ilert_simulator",
    "main",
]

PENDING = "PENDING"
ACCEPTED = "ACCEPTED"
RESOLVED = "RESOLVED"
OPEN_STATUSES = frozenset({PENDING, ACCEPTED})

EVENT_TYPES = ("ALERT", "ACCEPT", "RESOLVE", "COMMENT")
PRIORITIES = ("HIGH", "LOW")

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
        }

    def _copy(self) -> Alert:
        return replace(self, history=list(self.history), created_event=copy.deepcopy(self.created_event))


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

    def reset(self) -> None:
        """Forget events, alerts and faults; keep the configuration."""
        with self._lock:
            self._events.clear()
            self._alerts.clear()
            self._open.clear()
            self._windows.clear()
            self.rate_limit = None
            self.clear_faults()

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
        )
        self._alerts.append(alert)
        if alert_key is not None:
            self._open[(ikey, _fold(alert_key))] = alert
        return 202, self._success(alert, base_url, "NEW_INCIDENT_CREATED"), {}

    def _set_status(self, alert: Alert, status: str) -> None:
        """The one place an alert changes status, so reactions to it live here too."""
        alert.status = status
        if alert.key is not None:
            slot = (alert.integration_key, _fold(alert.key))
            if status in OPEN_STATUSES:
                self._open[slot] = alert
            elif self._open.get(slot) is alert:
                del self._open[slot]

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
        unknown = set(data) - {"integration_keys", "public_url"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
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


def _parse_body(raw: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The JSON object in ``raw`` (or None), and what to record for it."""
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed, parsed
    return None, {"_raw": raw[:2000].decode("utf-8", "replace")}


def _sim_json() -> Mapping[str, Any]:
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
        return json_response({"integration_keys": sorted(sim.integration_keys), "public_url": sim.public_url})

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
