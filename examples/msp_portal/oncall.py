"""The on-call page: is the bridge delivering, what was given up on, what happened to one ticket.

Everything here is read through the bridge's public store functions, as the
``flask autotask-ilert`` commands read it (``queue``, ``dead-letters``,
``status``), and Replay uses the same function as the ``replay`` command; the
audit trail comes in words from the store. Shown only after the portal's login,
and the Replay button is a POST with the session's CSRF token (see auth.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flask_autotask_ilert import Bridge, StoreUnavailable, get_bridge
from flask_autotask_ilert.lifecycle import State
from flask_autotask_ilert.reports import replay_dead

from .auth import login_required

blueprint = Blueprint("oncall", __name__)


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead list, with the digest its Replay button names it by."""

    digest: str
    at: str
    source: str
    ticket: int | None
    what: str
    reason: str


def when(ms: int | float | None) -> str:
    """A store time (ms) as people read it."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _digest(record: str) -> str:
    return hashlib.sha256(record.encode()).hexdigest()[:20]


def dead_letters(bridge: Bridge) -> list[DeadLetter]:
    letters = []
    for record in bridge.store.dead_records():
        parsed = json.loads(record)
        event = parsed.get("event") or {}
        reason = str(parsed.get("reason") or "no reason given")
        if parsed.get("status") and f"http {parsed['status']}" not in reason:
            reason += f" (http {parsed['status']})"
        letters.append(DeadLetter(
            digest=_digest(record), at=str(parsed.get("at", "?")), source=str(event.get("source")),
            ticket=event.get("ticket"), what=f"{event.get('target')} {event.get('action')}",
            reason=reason,
        ))
    return letters


def workers(bridge: Bridge, now: int) -> list[dict[str, Any]]:
    limit_ms = bridge.settings.ready_heartbeat_seconds * 1000
    return [{"name": name, "last": when(at), "age": age((now - at) / 1000), "alive": now - at <= limit_ms}
            for name, at in bridge.store.heartbeats()]


def budgets(bridge: Bridge, now: int) -> list[dict[str, Any]]:
    """The last reading of each source's Autotask API budget, as the worker took it."""
    rows = []
    for source in bridge.settings.sources.values():
        client = bridge.autotask(source)
        if client is None:
            rows.append({"source": source.name, "used": None, "note": "no Autotask API user configured"})
            continue
        reading = bridge.store.usage_reading(client.integration_code_digest)
        if reading is None:
            rows.append({"source": source.name, "used": None, "note": "not read yet"})
        else:
            used, read_at = reading
            rows.append({"source": source.name, "used": f"{used:.0%}",
                         "note": f"read {age((now - read_at) / 1000)} ago"})
    return rows


def ticket_reports(bridge: Bridge, ticket: int) -> list[dict[str, Any]]:
    """What ``status TICKET`` prints, per source that knows the ticket: state, queue, audit trail."""
    store, reports = bridge.store, []
    for source in bridge.settings.sources.values():
        mapping = store.mapping(source.name, ticket)
        queued = store.queued(source.name, ticket)
        trail = store.audit(source.name, ticket)
        if mapping is None and not queued and not trail:
            continue
        reports.append({
            "source": source.name,
            "state": (mapping.state if mapping else State.NONE).value,
            "status_class": mapping.status_class.value if mapping else None,
            "queued": [f"{e.get('target')} {e.get('action')}, queued {when(e.get('queued_at'))}, "
                       f"{e.get('attempts', 0)} failed attempt(s)" for e in queued],
            "audit": [(when(at * 1000), what) for at, what in trail],
        })
    return reports


@blueprint.get("/on-call")
@login_required
def on_call() -> tuple[str, int]:
    bridge = get_bridge()
    store = bridge.store
    ticket = request.args.get("ticket", type=int)
    try:
        now = store.now_ms()
        stats = store.queue_stats()
        oldest = store.oldest_queued_ms()
        page: dict[str, Any] = {
            "status": "ok", "queue": stats, "workers": workers(bridge, now),
            "oldest_age": age((now - oldest) / 1000) if oldest is not None else None,
            "budgets": budgets(bridge, now), "dead": dead_letters(bridge),
            "reports": ticket_reports(bridge, ticket) if ticket else None,
        }
        code = 200
    except StoreUnavailable:
        page = {"status": "Redis unreachable", "queue": {}, "workers": [], "oldest_age": None,
                "budgets": [], "dead": [], "reports": None}
        code = 503
    return render_template(
        "on_call.html", ticket=ticket, sources=sorted(bridge.settings.sources),
        prefix=bridge.settings.url_prefix, embedded=bridge.settings.embedded_worker, **page,
    ), code


@blueprint.post("/on-call/replay")
@login_required
def replay() -> Response:
    """Replay one dead letter, named by its digest (the record itself never leaves the server)."""
    store = get_bridge().store
    wanted = request.form.get("dead", "")
    record = next((r for r in store.dead_records() if _digest(r) == wanted), None)
    if record is None:
        abort(404, "that dead letter is no longer in the list")
    event = json.loads(record).get("event") or {}
    outcome = replay_dead(store, record, event, force=False)
    what = f"ticket {event.get('ticket')} {event.get('target')} {event.get('action')}"
    if outcome == "replayed":
        flash(f"Replayed {what}: queued, the worker sends it.")
    elif outcome == "moved-on":
        flash(f"Kept dead: {what} (the ticket has moved on since).")
    else:
        flash(f"{what} had already left the dead list.")
    return redirect(url_for("oncall.on_call"))
