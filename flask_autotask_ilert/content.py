"""What an ALERT says and where it goes: the ticket's labels, the rule it meets, the rendered text.

The worker calls ``compose`` once per ALERT, after reading the ticket; the body
it returns is stored in the queued event, so a retry sends the same text to
the same key. Entities (company, contact, resource) are read only when the
source's rules match on the company name or the chosen templates name them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import flask_autotask_ilert.metrics as metrics

from .alerts import TicketFacts, apply_text, build_event
from .autotask import AutotaskError
from .events import QueuedEvent
from .http import scrub
from .routing import Route, choose, needs_company

if TYPE_CHECKING:
    from .autotask import AutotaskClient
    from .config import SourceConfig
    from .entities import EntityReader

logger = logging.getLogger("flask_autotask_ilert")

#: Ticket picklist fields -> the name of their label (in the template context and in ROUTES).
PICKLIST_LABELS: Mapping[str, str] = {
    "status": "status",
    "priority": "priority",
    "queueID": "queue",
    "issueType": "issueType",
    "subIssueType": "subIssueType",
    "source": "source",
    "ticketType": "ticketType",
}


@dataclass(frozen=True)
class Alert:
    """An ALERT's body and where it goes."""

    body: dict[str, Any]
    route: Route | None
    integration_key: str


def ticket_labels(client: AutotaskClient | None, ticket: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The labels of the ticket's picklist fields (one cached picklist call serves them all)."""
    labels: dict[str, str | None] = dict.fromkeys(PICKLIST_LABELS.values())
    if client is None or not ticket:
        return labels
    for field, name in PICKLIST_LABELS.items():
        value = ticket.get(field)
        if value is not None:
            labels[name] = client.picklist("Tickets", field).get(str(value))
    return labels


def ticket_context(
    event: QueuedEvent, facts: TicketFacts, labels: Mapping[str, str | None]
) -> dict[str, Any]:
    """``ticket`` as templates see it: Autotask's fields, picklists as labels, ``queue`` and ``url``."""
    callout = event.get("callout") or {}
    if facts.ticket is None:
        fields: dict[str, Any] = {"id": event["ticket"], "ticketNumber": callout.get("number"),
                                  "status": callout.get("status")}
    else:
        fields = dict(facts.ticket)
        for field, name in PICKLIST_LABELS.items():
            if labels.get(name) is not None and field != "queueID":
                fields[field] = labels[name]
    fields["queue"] = labels.get("queue")
    fields["url"] = facts.url
    return fields


def activity_time(event: QueuedEvent) -> datetime:
    """When the ticket changed, as the callout said; else when the event was queued."""
    raw = (event.get("callout") or {}).get("last_activity")
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            when = None
        if when is not None:
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(int(event["queued_at"]) / 1000, timezone.utc)


def compose(
    source: SourceConfig,
    event: QueuedEvent,
    facts: TicketFacts,
    labels: Mapping[str, str | None],
    reader: EntityReader | None,
) -> Alert:
    """The ALERT body (default text, or the templates'), and the rule the ticket meets."""
    body = build_event(event, source.priority, facts)
    ticket = facts.ticket or {}
    entities: dict[str, Any] = {}
    if source.routes and needs_company(source.routes) and reader is not None:
        entities.update(reader.read(("company",), ticket))
    company = entities.get("company") or {}
    route = choose(source.routes, {**labels, "company": company.get("companyName")}, activity_time(event))
    templates = route.templates if route is not None and route.templates else source.templates
    priority = route.priority.value if route is not None and route.priority else None
    if templates is None:
        apply_text(body, priority=priority)
    else:
        missing = templates.entities - entities.keys()
        if missing and reader is not None:
            entities.update(reader.read(missing, ticket))
        rendered = templates.render({
            "ticket": ticket_context(event, facts, labels),
            "company": entities.get("company"),
            "contact": entities.get("contact"),
            "resource": entities.get("resource"),
            "callout": event.get("callout") or {},
            "source": source.name,
        })
        for what, why in rendered.failures:
            logger.warning("source %s, ticket %s: the %s template failed (%s); the default text "
                           "goes out", source.name, event["ticket"], what, scrub(why, source.secrets))
            metrics.count_template_error(source.name, what)
        apply_text(body, summary=rendered.summary, details=rendered.details,
                   custom_details=rendered.custom_details, priority=priority)
    key = route.integration_key if route is not None else source.ilert_integration_key
    return Alert(body, route, key)


def explain(source: SourceConfig, client: AutotaskClient | None, ticket_id: int, when: datetime) -> str:
    """Which rule a ticket meets at ``when``, in one line (``simulate``); reads the ticket (and the
    company, if a rule matches on it) from Autotask."""
    labels: dict[str, str | None] = ticket_labels(None, None)
    note = ""
    try:
        ticket = client.get_ticket(ticket_id) if client is not None else None
        if ticket is None:
            note = " (the ticket is not in Autotask: matched without labels)"
        else:
            labels = ticket_labels(client, ticket)
            if client is not None and needs_company(source.routes) and ticket.get("companyID"):
                try:
                    company = client.get_company(int(ticket["companyID"])) or {}
                except AutotaskError as exc:
                    note = f" (Autotask: {exc}; matched without the company's name)"
                else:
                    labels["company"] = company.get("companyName")
    except AutotaskError as exc:
        note = f" (Autotask: {exc}; matched without labels)"
    route = choose(source.routes, labels, when)
    if route is None:
        return f"route: no rule matches ticket {ticket_id}; its alert goes to the source's own key{note}"
    return f"route: ticket {ticket_id} meets {route.label}{note}"
