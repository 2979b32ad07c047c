"""What one Autotask webhook delivery does: dedupe, turn the status id into a label, apply the lifecycle.

A TicketWebhook delivery is a second way for the same news to arrive: it goes
through ``callouts.handle_callout`` and the same store script as a callout, on
the same ticket record, so a ticket reported by both a callout and a webhook
moves through the lifecycle once and pages once. Only what differs lives here:

- Autotask names a delivery by (``Guid``, ``SequenceNumber``) and sends it again
  when an answer is late; a repeat is answered 200 ``duplicate`` and changes
  nothing. The mark is set only once the delivery is about to be recorded, and
  taken back if recording fails, so Autotask's retry of a refused delivery counts.
- The status arrives as a picklist id; the tenant's picklist (cached by the
  Autotask client) gives the label that the source's status classes know.
- Anything deliberately not acted on (another entity, a deleted ticket, a change
  without a status, a status id the tenant does not have, a rejected ticket) is
  answered 2xx: Autotask retries a non-2xx delivery and, after 25 failed events,
  disables the webhook.

No Flask here: the view verifies the signature and hands over a validated delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass

from .callouts import handle_callout
from .config import Settings, SourceConfig
from .errors import StoreUnavailable
from .lifecycle import EVENT_TYPE, State
from .schemas import AutotaskWebhook, Callout
from .store import Store

#: How long a delivery's (Guid, SequenceNumber) is remembered: Autotask gives up
#: retrying one after about two minutes.
DELIVERY_MEMORY_MS = 86_400_000
#: The ``via`` of a queued event's callout record when a webhook queued it.
VIA = "autotask-webhook"

_SCHEDULING = frozenset(action.value for action in EVENT_TYPE)

#: ``action`` of a delivery that was deliberately not applied, besides the lifecycle's own.
DUPLICATE = "duplicate"
IGNORED = "ignored"


@dataclass(frozen=True)
class HookAnswer:
    """The outcome of one delivery; never a 4xx or 5xx for something merely ignored."""

    ticket: int
    action: str  # a lifecycle action, "stale", DUPLICATE or IGNORED
    state: State | None = None
    previous: State | None = None
    reason: str | None = None  # why it was ignored
    status: str | None = None  # the status label the delivery's picklist id stands for

    @property
    def http_status(self) -> int:
        return 202 if self.action in _SCHEDULING else 200

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"ticket": self.ticket, "action": self.action}
        if self.state is not None:
            body["state"] = self.state.value
        if self.reason is not None:
            body["reason"] = self.reason
        return body


def as_callout(hook: AutotaskWebhook, status_label: str) -> Callout:
    """The callout this delivery amounts to; ``EventTime`` is its activity time (staleness)."""
    extra = {"via": VIA}
    if hook.person_id is not None:
        extra["changed_by"] = str(hook.person_id)  # the resource who made the change
    return Callout(
        ticket_id=hook.ticket_id,
        status=" ".join(status_label.split()),
        number=hook.ticket_number,
        last_activity=hook.event_time,
        extra=extra,
    )


def handle_autotask_webhook(
    settings: Settings,
    store: Store,
    source: SourceConfig,
    hook: AutotaskWebhook,
    status_labels: Callable[[], Mapping[str, str]],
    request_id: str | None = None,
) -> HookAnswer:
    """Apply one verified delivery (not a ``Deactivated`` one, which the view only logs).

    ``status_labels`` gives the tenant's status picklist (value -> label); it is
    called only for a delivery that carries a status, and may raise
    ``AutotaskError`` (the view answers 503, so Autotask delivers it again).
    """

    def ignored(reason: str) -> HookAnswer:
        store.count(f"autotask_webhooks_{reason}")
        return HookAnswer(hook.ticket_id, IGNORED, reason=reason)

    if hook.entity_type.casefold() != "ticket":
        return ignored("not_a_ticket")
    if hook.action == "Delete":
        return ignored("deleted")
    value = hook.status_value
    if value is None:
        return ignored("no_status")
    label = status_labels().get(str(value))
    if label is None or not label.strip():
        return ignored("unknown_status")
    if not store.first_delivery(source.name, hook.guid, hook.sequence, DELIVERY_MEMORY_MS):
        return HookAnswer(hook.ticket_id, DUPLICATE, status=label)
    try:
        answer = handle_callout(settings, store, source, as_callout(hook, label), request_id=request_id)
    except StoreUnavailable:
        with suppress(StoreUnavailable):  # Redis is gone: the mark expires; the answer is 503
            store.forget_delivery(source.name, hook.guid, hook.sequence)
        raise
    return HookAnswer(answer.ticket, answer.action, answer.state, answer.previous, status=label)
