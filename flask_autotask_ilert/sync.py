"""What one ilert webhook does: find the ticket, apply the sync table, queue the ticket write.

No Flask here. The mapping changes *before* the ticket write is queued, and in
the same atomic step, so the callout Autotask fires for the bridge's own edit
finds the new state and does nothing, and so does the webhook ilert fires for
the bridge's own ACCEPT/RESOLVE events: no loops, by construction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from .alerts import ALERT_KEY_PREFIX, alert_key
from .audit import SUPERSEDED, WEBHOOK, Entry
from .config import Settings, SourceConfig
from .errors import StoreUnavailable
from .events import ticket_write
from .lifecycle import IlertStatus, State, SyncAction, sync_transition
from .schemas import AlertWebhook
from .store import Store, TicketMapping, dumps_event

logger = logging.getLogger("flask_autotask_ilert")

_ALERT_KEY = re.compile(
    rf"^\s*{re.escape(ALERT_KEY_PREFIX)}(\d{{1,16}})(?:-(\d{{1,9}}))?\s*$", re.IGNORECASE
)
#: Attempts at the compare-and-set before giving up with a 503 (only under heavy contention).
CAS_ATTEMPTS = 8


def alert_of(alert_key: str | None) -> tuple[int, int] | None:
    """The ticket id and alert generation in an alert key we made (ilert trims and case-folds keys).

    ``autotask-<id>`` is a ticket's first alert (generation 1), ``autotask-<id>-<n>``
    the n-th, made when a resolved ticket was reopened (``alerts.alert_key``).
    """
    match = _ALERT_KEY.match(alert_key or "")
    if not match:
        return None
    generation = int(match.group(2)) if match.group(2) else 1
    return (int(match.group(1)), generation) if generation >= 1 else None


def ticket_of(alert_key: str | None) -> int | None:
    """The ticket id in an alert key we made, whichever of its alerts it names."""
    found = alert_of(alert_key)
    return found[0] if found else None


@dataclass(frozen=True)
class WebhookAnswer:
    ticket: int | None
    action: str  # a SyncAction value, or "ignored"
    state: State | None

    @property
    def http_status(self) -> int:
        return 202 if self.action in (SyncAction.ACCEPT_TICKET, SyncAction.RESOLVE_TICKET) else 200

    def body(self) -> dict[str, object]:
        return {
            "ticket": self.ticket,
            "action": self.action,
            "state": self.state.value if self.state else None,
        }


def _note(template: str, webhook: AlertWebhook) -> str:
    when = (webhook.reported_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return template.format(
        who=webhook.who, when=when, alert_id=webhook.alert_id or "?", alert_url=webhook.url or ""
    )


def handle_webhook(
    settings: Settings, store: Store, source: SourceConfig, webhook: AlertWebhook,
    request_id: str | None = None,
) -> WebhookAnswer:
    """Apply the ilert -> Autotask table to one webhook (idempotent; repeats change nothing).

    ``request_id`` travels with the queued ticket write, as with callouts.
    """
    assert source.sync is not None
    found = alert_of(webhook.alert_key)
    if found is None:
        store.count("webhooks_not_ours")
        return WebhookAnswer(None, "ignored", None)
    ticket, generation = found
    status = IlertStatus(webhook.status)
    for _ in range(CAS_ATTEMPTS):
        mapping = store.mapping(source.name, ticket)
        if mapping is None:
            store.count("webhooks_not_ours")
            return WebhookAnswer(ticket, "ignored", None)
        if generation != mapping.generation:
            if _superseded(store, source, ticket, mapping, webhook, generation):
                return WebhookAnswer(ticket, "ignored", mapping.state)
            continue
        change = sync_transition(mapping.state, mapping.status_class, status)
        if not change.writes_ticket:
            return WebhookAnswer(ticket, SyncAction.NOTHING.value, mapping.state)
        accept = change.action is SyncAction.ACCEPT_TICKET
        sync = source.sync
        event = ticket_write(
            source.name,
            ticket,
            change.action.value,
            status_label=(sync.accept_status if accept else sync.resolve_status)
            if change.set_status
            else None,
            note_title=_note(sync.note_title, webhook),
            note_text=_note(sync.accept_note if accept else sync.resolve_note, webhook),
            by=webhook.who,
            alert_id=webhook.alert_id,
            queued_at=store.now_ms(),
            request_id=request_id,
            alert_key=alert_key(ticket, generation),
        )
        new = replace(mapping, state=change.new_state)
        retention = settings.resolved_retention_ms if change.new_state is State.RESOLVED else None
        entry = Entry.transition(WEBHOOK, change.action.value, mapping.state, change.new_state,
                                 by=webhook.who)
        if store.compare_and_set(
            source.name, ticket, mapping, new, dumps_event(event), retention, audit_entry=entry
        ):
            return WebhookAnswer(ticket, change.action.value, change.new_state)
    raise StoreUnavailable("the ticket's mapping kept changing; try again")


def _superseded(
    store: Store, source: SourceConfig, ticket: int, mapping: TicketMapping,
    webhook: AlertWebhook, generation: int,
) -> bool:
    """A webhook about another alert of the ticket than its current one: it changes nothing.

    After a reopen, ilert may still report the first alert (its RESOLVED, late,
    or repeated): applied to the ticket's new alert it would close the reopened
    ticket. Counted and audited; the audit record is written only if the record
    is still the one read (False: read again, it may have changed generation).
    """
    entry = Entry.transition(WEBHOOK, SUPERSEDED, mapping.state, mapping.state)
    if not store.compare_and_set(source.name, ticket, mapping, mapping, None, None, audit_entry=entry):
        return False
    store.count("webhooks_superseded")
    logger.debug(  # the webhook's own line says "ignored"; this says why
        "webhook source=%s ticket=%s: %s is about alert %s of the ticket, the current one is %s; "
        "ignored", source.name, ticket, webhook.status, generation, mapping.generation,
    )
    return True
