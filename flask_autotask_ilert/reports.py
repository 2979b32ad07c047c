"""What the operator commands gather, as plain data: cli.py parses options and prints these.

Kept apart from the printing so that what a command finds can be tested and
reused without running click, and so that each command reads as "gather,
then render".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import SplitResult, urlunsplit

import requests

from .audit import REPLAYED, Entry
from .config import Settings, SourceConfig
from .events import DeadLetter, QueuedEvent, replayed
from .health import SAMPLE, read_queue_health
from .lifecycle import State, replay_states
from .store import Store

# -- queue ----------------------------------------------------------------------------------


def _seconds(ms: int) -> float:
    return round(ms / 1000, 1)


def queue_report(store: Store, settings: Settings, limit: int) -> dict[str, Any]:
    """The queue command's JSON: the shared health reading, and the ``limit`` tickets whose
    head events have waited longest (among those due first)."""
    health = read_queue_health(store, settings, sample=max(limit, SAMPLE))
    now, oldest = health.now_ms, health.oldest_age_ms
    items = []
    for head in health.heads[:limit]:
        queued = store.queued(head.source, head.ticket)
        first = queued[0] if queued else None
        items.append({
            "source": head.source,
            "ticket": head.ticket,
            "events": head.length,
            "head": f"{first.get('target')} {first.get('action')}" if first else None,
            "attempts": first.get("attempts", 0) if first else None,
            "age_s": _seconds(now - head.queued_at_ms) if head.queued_at_ms is not None else None,
            "due_in_s": _seconds(max(0, head.due_ms - now)),
        })
    return {
        "tickets": health.tickets,
        "most_overdue_ms": health.most_overdue_ms,
        "dead_letters": health.dead_letters,
        "oldest_event_age_s": _seconds(oldest) if oldest is not None else None,
        "workers": health.workers,
        "oldest": items,
    }


# -- one ticket ------------------------------------------------------------------------------


def dead_matches(record: DeadLetter, source: str | None, ticket: int | None) -> bool:
    event = record.get("event") or {}
    return ((source is None or event.get("source") == source)
            and (ticket is None or event.get("ticket") == ticket))


def ticket_report(store: Store, source: str, ticket: int,
                  dead: list[DeadLetter]) -> dict[str, Any] | None:
    """What one source knows of a ticket (the JSON of `status --json`), None if nothing."""
    mapping = store.mapping(source, ticket)
    queued = store.queued(source, ticket)
    audit = store.audit(source, ticket)
    dead_here = [d for d in dead if dead_matches(d, source, ticket)]
    if mapping is None and not queued and not audit and not dead_here:
        return None
    due, leased = store.schedule(source, ticket)
    return {
        "source": source,
        "ticket": ticket,
        "state": mapping.state.value if mapping else State.NONE.value,
        "status_class": mapping.status_class.value if mapping else None,
        "expires_in_s": _seconds(mapping.ttl_ms) if mapping and mapping.ttl_ms else None,
        "queued": [
            {"target": e.get("target"), "action": e.get("action"), "queued_at": e.get("queued_at"),
             "attempts": e.get("attempts", 0), "request_id": e.get("request_id")}
            for e in queued
        ],
        "next_try_at": due,
        "leased": leased,
        "dead_letters": len(dead_here),
        "audit": [{"at": at, "what": what} for at, what in audit],
    }


def ticket_reports(store: Store, sources: Iterable[str], ticket: int) -> list[dict[str, Any]]:
    """Every named source's report of the ticket, skipping sources that know nothing of it."""
    dead = store.dead_letters()
    return [r for name in sources if (r := ticket_report(store, name, ticket, dead)) is not None]


def forget_candidates(store: Store, sources: Iterable[str], ticket: int) -> list[tuple[str, str]]:
    """(source, what it holds) for each source with a record or queued events of the ticket."""
    found = []
    for name in sources:
        mapping = store.mapping(name, ticket)
        queued = store.queued(name, ticket)
        if mapping is not None or queued:
            state = mapping.state.value if mapping else State.NONE.value
            found.append((name, f"source {name}: state {state}, {len(queued)} queued event(s)"))
    return found


def dead_to_replay(store: Store, sources: Iterable[str],
                   ticket: int | None) -> list[tuple[str, dict[str, Any]]]:
    """The dead records (exactly as stored) and their events, of these sources and ticket."""
    names = set(sources)
    chosen = []
    for raw in store.dead_records():
        event = json.loads(raw).get("event") or {}
        if event.get("source") in names and (ticket is None or event.get("ticket") == ticket):
            chosen.append((raw, event))
    return chosen


def replay_dead(store: Store, raw: str, event: dict[str, Any], force: bool) -> str:
    """Put one dead record's event back in its ticket's queue, as if just queued.

    "replayed"; "moved-on" when the ticket has moved past the event (an alert
    create for a ticket resolved since) and ``force`` is off; "gone" when the
    record had already left the dead list.
    """
    states = () if force else replay_states(str(event.get("target")), str(event.get("action")))
    outcome = store.replay_dead(
        raw, replayed(cast(QueuedEvent, event), store.now_ms()), states,
        audit_entry=Entry.delivery(REPLAYED, event),
    )
    return {1: "replayed", -1: "moved-on"}.get(outcome, "gone")


# -- simulate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A sample callout or webhook, ready to send; ``shown`` is its path with the token hidden."""

    url: str
    shown: str
    what: str
    send: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None


@dataclass(frozen=True)
class SampleAnswer:
    """What the bridge answered to a sample (status None: no answer at all)."""

    status: int | None
    reason: str = ""
    request_id: str | None = None
    text: str = ""
    action: str | None = None  # what the bridge decided, when it decided
    failure: str = ""  # why there was no answer

    @property
    def decided(self) -> bool:
        """The bridge took the sample: 200, 202, or the lifecycle's 400, with an action."""
        return self.action is not None and self.status in (200, 202, 400)

    @property
    def redirected(self) -> bool:
        return self.status is not None and 300 <= self.status < 400


def callout_sample(base: str, config: SourceConfig, ticket: int, status: str) -> Sample:
    auth = None
    if config.callout_username and config.callout_password:
        auth = (config.callout_username, config.callout_password)
    # No last_activity_datetime: a made-up one could make the ticket's next real callout stale.
    send = {"data": {"id": str(ticket), "number": f"SIMULATED.{ticket}", "status": status,
                     "domain": "SIMULATED"}}
    return Sample(base + "/callout/" + config.callout_tokens[0], "/callout/***",
                  f"callout for ticket {ticket}, status {status!r}", send, auth=auth)


def webhook_sample(base: str, config: SourceConfig, ticket: int, status: str) -> Sample:
    sync = config.sync
    assert sync is not None  # the command checks that the source is bidirectional
    path, shown = ("/ilert/" + sync.webhook_tokens[0], "/ilert/***") if sync.webhook_tokens \
        else ("/ilert", "/ilert")
    headers: dict[str, str] = {}
    if sync.header_name and sync.header_value:
        headers[sync.header_name] = sync.header_value
    auth = (sync.username, sync.password) if sync.username and sync.password else None
    body: Any = {"id": "simulated", "status": status, "alertKey": f"autotask-{ticket}",
                 "eventType": "alert-simulated", "summary": "flask-autotask-ilert simulate",
                 "assignedTo": {"username": "autotask-ilert-simulate"}}
    return Sample(base + path, shown, f"webhook for alert key autotask-{ticket}, status {status}",
                  {"json": body}, headers=headers, auth=auth)


def base_url(parts: SplitResult, settings: Settings) -> str:
    """Where the bridge answers: the URL given, without query or fragment, plus the prefix."""
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", "")) + settings.url_prefix


def send_sample(sample: Sample, timeout: tuple[float, float]) -> SampleAnswer:
    """POST the sample without following redirects (they would carry the token elsewhere)."""
    try:
        response = requests.post(sample.url, headers=sample.headers, auth=sample.auth,
                                 timeout=timeout, allow_redirects=False, **sample.send)
    except requests.RequestException as exc:
        return SampleAnswer(None, failure=type(exc).__name__)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    action = str(answer["action"]) if isinstance(answer, dict) and "action" in answer else None
    return SampleAnswer(response.status_code, response.reason,
                        response.headers.get("X-Request-Id"), response.text.strip()[:2000], action)
