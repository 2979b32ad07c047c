"""The queued event: the one shape of the work a ticket's queue holds, and how each kind is made.

An event is stored as JSON at the tail of its ticket's queue (``q:<source>:<ticket>``),
worked at the head by the delivery worker, rewritten in place while it is retried, and
kept whole in a dead letter. Two kinds share the shape: an ilert event, queued by a
callout, and a ticket write, queued by an ilert webhook. Declaring the keys here lets
mypy catch a misspelt one wherever an event is built or read; docs/design.md has the
same table for readers (a test keeps them equal).
"""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

#: ``target`` of an event for ilert's Events API (queued by a callout).
ILERT = "ilert"
#: ``target`` of a write to the Autotask ticket (queued by an ilert webhook).
TICKET = "ticket"


class _Queued(TypedDict):
    """The keys every event has from the moment it is queued."""

    id: str  # unique per event (uuid4 hex); the worker pops a head only if it still has this id
    target: str  # where it goes: ILERT or TICKET
    action: str  # an Action value (create, accept, resolve) or a SyncAction value (accept-ticket, ...)
    source: str  # the alert source (configuration) it belongs to
    ticket: int  # the Autotask ticket id
    queued_at: int  # when it was queued (ms since the epoch); delivery latency counts from here
    attempts: int  # failed delivery attempts so far (0 when queued)


class QueuedEvent(_Queued, total=False):
    """A queued event; the keys below are set only for one kind, or only along the way."""

    request_id: str  # the request id of the callout or webhook that queued it (log correlation)
    callout: dict[str, Any]  # ilert: what the callout said (Callout.record()), to page without Autotask
    body: dict[str, Any]  # ilert: the Events API body, once built (a retry sends the same content)
    alert_key: str  # all: the key of the alert it is about, generation included (callout.lua, sync.py)
    slot: int  # ilert: the send slot reserved under the key's rate limit (ms); dropped on a retry
    enrich_attempts: int  # ilert: failed reads of the ticket from Autotask so far
    taken_at: int  # when a worker first took it up (ms); ENRICH_DEADLINE_SECONDS counts from here
    status_label: str | None  # ticket: the status to set, or None for a note only
    note_title: str  # ticket: the title of the note to add
    note_text: str  # ticket: the text of the note to add
    by: str  # ticket: who acted in ilert (the "who" of the note and the signal)
    alert_id: str | None  # ticket: the ilert alert's id, if the webhook named it
    done: list[str]  # ticket: the steps already written (checkpoints), not repeated on a retry
    replays: int  # how many times it was replayed from the dead letters
    first_queued_at: int  # when it was first queued (ms), kept across replays


class DeadLetter(TypedDict):
    """A record of the ``dead`` list: an event given up on, and why."""

    event: QueuedEvent  # the event as it was at its last attempt
    status: int | None  # the HTTP status of the last answer, if there was one
    reason: str  # why it was given up on (secrets stripped)
    at: str  # when (ISO 8601, UTC)


def ilert_event(
    source: str, ticket: int, callout: dict[str, Any], queued_at: int, request_id: str | None = None,
    action: str = "",
) -> QueuedEvent:
    """An event for ilert, from a callout; the action is the lifecycle cell's."""
    event: QueuedEvent = {
        "id": uuid.uuid4().hex,
        "target": ILERT,
        "action": action,
        "source": source,
        "ticket": ticket,
        "callout": callout,
        "queued_at": queued_at,
        "attempts": 0,
    }
    if request_id:
        event["request_id"] = request_id
    return event


def ticket_write(
    source: str, ticket: int, action: str, *, status_label: str | None, note_title: str,
    note_text: str, by: str, alert_id: str | None, queued_at: int, request_id: str | None = None,
    alert_key: str | None = None,
) -> QueuedEvent:
    """A write to the Autotask ticket, from an ilert webhook (bidirectional sync).

    ``alert_key`` names the alert the webhook was about: if a reopen gives the
    ticket a newer alert before the write goes out, its status is left alone.
    """
    event: QueuedEvent = {
        "id": uuid.uuid4().hex,
        "target": TICKET,
        "action": action,
        "source": source,
        "ticket": ticket,
        "status_label": status_label,
        "note_title": note_title,
        "note_text": note_text,
        "by": by,
        "alert_id": alert_id,
        "queued_at": queued_at,
        "attempts": 0,
    }
    if request_id:
        event["request_id"] = request_id
    if alert_key:
        event["alert_key"] = alert_key
    return event


def replayed(event: QueuedEvent, now_ms: int) -> QueuedEvent:
    """A dead event as if just queued: no attempts, no pacing slot, the alert body built anew."""
    fresh = event.copy()
    fresh.pop("slot", None)
    fresh.pop("body", None)
    fresh.pop("enrich_attempts", None)
    fresh.pop("taken_at", None)
    fresh["attempts"] = 0
    fresh["queued_at"] = now_ms
    fresh["replays"] = int(event.get("replays", 0)) + 1
    fresh["first_queued_at"] = event.get("first_queued_at", event["queued_at"])
    return fresh


def dead_letter(event: QueuedEvent, status: int | None, reason: str, at: str) -> DeadLetter:
    """The dead-letter record of an event given up on."""
    return {"event": event, "status": status, "reason": reason, "at": at}
