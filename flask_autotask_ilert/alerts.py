"""The ilert event bodies, built from a queued event and what Autotask said of the ticket.

Pure functions. The integration key is added by the worker at send time and
is never part of a queued event, a dead letter or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .events import QueuedEvent
from .http import truncate
from .lifecycle import EVENT_TYPE, Action, PriorityMap

ALERT_KEY_PREFIX = "autotask-"
SUMMARY_LIMIT = 255
DETAILS_LIMIT = 20_000
#: Bytes of a summary kept in the ticket's record for its ACCEPT and RESOLVE: with the
#: 64-byte audit trail, every value stays within Redis' compact hash encoding.
KEPT_SUMMARY_BYTES = 64


def alert_key(ticket_id: int, generation: int = 1) -> str:
    """One alert per ticket and generation, so a restart or a repeat can never make a second one.

    The first alert of a ticket is ``autotask-<id>``; an alert a reopen creates
    (re-alert on reopen) is ``autotask-<id>-<generation>``, so that ilert's
    webhooks about an older alert can be told from those about the current one.
    """
    return f"{ALERT_KEY_PREFIX}{ticket_id}" if generation <= 1 else (
        f"{ALERT_KEY_PREFIX}{ticket_id}-{generation}"
    )


def kept_summary(summary: str) -> str:
    """The summary as the ticket's record keeps it: at most KEPT_SUMMARY_BYTES of UTF-8."""
    if len(summary.encode("utf-8")) <= KEPT_SUMMARY_BYTES:
        return summary
    cut = summary.encode("utf-8")[:KEPT_SUMMARY_BYTES - 3].decode("utf-8", "ignore")
    return cut.rstrip() + "\u2026"


def fallback_summary(event: QueuedEvent) -> str:
    """What an ACCEPT or RESOLVE says when the alert's own summary is not known."""
    ticket_id = int(event["ticket"])
    number = (event.get("callout") or {}).get("number") or f"#{ticket_id}"
    return truncate(" ".join(f"[{number}] Autotask ticket {ticket_id}".split()), SUMMARY_LIMIT)


@dataclass(frozen=True)
class TicketFacts:
    """What the worker learned about the ticket from Autotask (all optional)."""

    ticket: Mapping[str, Any] | None = None
    priority_label: str | None = None
    queue_label: str | None = None
    url: str | None = None


def build_event(
    event: QueuedEvent, priority_map: PriorityMap, facts: TicketFacts | None = None,
    summary: str | None = None,
) -> dict[str, Any]:
    """The Events API body for a queued event (without ``integrationKey``).

    ``summary``: for an ACCEPT or RESOLVE, the alert's summary as the ticket's
    record kept it; ilert's event schema requires one on every event.
    """
    action = Action(event["action"])
    ticket_id = int(event["ticket"])
    key = event.get("alert_key") or alert_key(ticket_id)  # events queued before keys were carried
    body: dict[str, Any] = {"eventType": EVENT_TYPE[action], "alertKey": key}
    if action is not Action.CREATE:
        body["summary"] = truncate(summary, SUMMARY_LIMIT) if summary else fallback_summary(event)
        return body

    facts = facts or TicketFacts()
    callout = event.get("callout") or {}
    ticket = facts.ticket or {}
    number = ticket.get("ticketNumber") or callout.get("number") or f"#{ticket_id}"
    status = callout.get("status")
    title = ticket.get("title") or (f"Autotask ticket {ticket_id} ({status})" if status
                                    else f"Autotask ticket {ticket_id}")
    description = ticket.get("description")
    if not description:
        description = (
            "Autotask's API did not give the ticket's details; "
            "this alert was built from the callout alone."
            if facts.ticket is None
            else ""
        )
    body.update(
        summary=truncate(" ".join(f"[{number}] {title}".split()), SUMMARY_LIMIT),
        priority=priority_map(facts.priority_label).value,
        customDetails={
            "ticketId": ticket_id,
            "ticketNumber": number,
            "status": callout.get("status"),
            "priority": facts.priority_label,
            "queue": facts.queue_label or ticket.get("queueID"),
            "companyId": ticket.get("companyID"),
            "domain": callout.get("domain"),
        },
    )
    if description:
        body["details"] = truncate(str(description), DETAILS_LIMIT)
    if facts.url:
        body["links"] = [{"href": facts.url, "text": f"Autotask ticket {number}"}]
    return body


def apply_text(
    body: dict[str, Any],
    *,
    summary: str | None = None,
    details: str | None = None,
    custom_details: Mapping[str, str] | None = None,
    priority: str | None = None,
) -> dict[str, Any]:
    """An ALERT body with custom text (templates.py) and a routing rule's priority put in.

    What is None or blank keeps the default text, so a template that failed, or
    rendered nothing, still leaves the alert a summary.
    """
    if summary is not None and summary.strip():
        body["summary"] = truncate(" ".join(summary.split()), SUMMARY_LIMIT)
    if details is not None and details.strip():
        body["details"] = truncate(details, DETAILS_LIMIT)
    if custom_details:
        body["customDetails"] = {**body.get("customDetails", {}), **custom_details}
    if priority is not None:
        body["priority"] = priority
    return body
