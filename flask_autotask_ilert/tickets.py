"""Writing an alert's status back to its ticket: the default Autotask writer and its interface.

A host app can replace the Autotask write with its own ``TICKET_UPDATER`` (to
mirror status into its own database or another system): any callable that
takes a :class:`TicketUpdate`. It is called from the delivery worker, with the
same retries as every other delivery: raise :class:`TicketUpdateError` with
``retryable=False`` to give up (the update is dead-lettered), any other
exception to be called again later with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .autotask import AutotaskClient
from .errors import AutotaskIlertError

STATUS_STEP = "status"
NOTE_STEP = "note"
NOTE_FIELDS = {"noteType": "NOTE_TYPE", "publish": "NOTE_PUBLISH"}

logger = logging.getLogger("flask_autotask_ilert")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


class TicketUpdateError(AutotaskIlertError):
    """A ticket update failed; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class TicketUpdate:
    """What changed in ilert, and what the ticket should show for it."""

    source: str
    ticket_id: int
    action: str  # "accept-ticket" or "resolve-ticket"
    status_label: str | None  # the status to set, or None to leave the status alone
    note_title: str
    note_text: str
    by: str
    alert_id: str | None
    #: Steps a previous attempt already completed (the default writer's "status", "note").
    completed: frozenset[str] = frozenset()
    #: Records a completed step, so a retry after a later failure does not repeat it.
    checkpoint: Callable[[str], None] = field(default=lambda step: None, repr=False, compare=False)


TicketUpdater = Callable[[TicketUpdate], None]


class AutotaskTicketUpdater:
    """PATCH the status (only ``id`` and ``status``, never a PUT), then add the note.

    Labels are turned into the tenant's picklist values at run time; a label the
    tenant does not have is a configuration error, reported, not retried.
    """

    def __init__(
        self, client: AutotaskClient, note_type: str | None, note_publish: str | None
    ) -> None:
        self.client = client
        self.note_type = note_type
        self.note_publish = note_publish

    def __call__(self, update: TicketUpdate) -> None:
        if update.status_label and STATUS_STEP not in update.completed:
            status = self._status(update.status_label)
            self.client.update_ticket(update.ticket_id, {"status": status})
            update.checkpoint(STATUS_STEP)
        if NOTE_STEP not in update.completed:
            text = update.note_text
            if update.status_label:  # the status was written, now or by an earlier attempt
                text = f"{text} The ticket's status was set to {update.status_label}."
            self.client.add_note(
                update.ticket_id,
                update.note_title,
                text,
                note_type=note_value(self.client, "noteType", self.note_type),
                publish=note_value(self.client, "publish", self.note_publish),
            )
            update.checkpoint(NOTE_STEP)

    def _status(self, label: str) -> int:
        value = self.client.label_to_value("Tickets", "status", label)
        if value is None:
            raise TicketUpdateError(
                f"Tickets.status has no value labelled {label!r} in this tenant", retryable=False
            )
        return value


def note_value(client: AutotaskClient, field_name: str, label: str | None) -> int:
    """The value of a note's picklist field; a status change never fails over a note.

    The configured label, else the tenant's default, else (a tenant may have
    no default) its first active value by sortOrder. Any fallback is logged
    once per process, naming the values to choose from, so that someone sets
    ``NOTE_TYPE``/``NOTE_PUBLISH``.
    """
    if label is not None:
        value = client.label_to_value("TicketNotes", field_name, label)
        if value is not None:
            return value
        why = f"has no value labelled {label!r}"
    else:
        value = client.default_value("TicketNotes", field_name)
        if value is not None:
            return value
        why = "has no default value and none is configured"
    choices = client.active_values("TicketNotes", field_name)
    default = client.default_value("TicketNotes", field_name)
    chosen = next(((v, name) for v, name in choices if v == default), None)
    if chosen is None:
        if not choices:
            raise TicketUpdateError(f"TicketNotes.{field_name} has no active value", retryable=True)
        chosen = choices[0]
        why = f"{why}; no default either" if label is not None else why
    first, first_label = chosen
    with _warned_lock:
        fresh = (field_name, why) not in _warned
        _warned.add((field_name, why))
    if fresh:
        logger.warning(
            "TicketNotes.%s %s: notes use %r; set %s to one of: %s",
            field_name, why, first_label, NOTE_FIELDS.get(field_name, field_name),
            ", ".join(repr(name) for _, name in choices),
        )
    return first


def current_status(client: AutotaskClient, ticket_id: int) -> str | None:
    """The ticket's status label as Autotask has it now (one GET); None if the ticket is gone.

    A value the picklist does not know is returned as its number, which no
    status class lists: it classifies as OTHER.
    """
    ticket = client.get_ticket(ticket_id)
    if ticket is None:
        return None
    value = str(ticket.get("status"))
    return client.picklist("Tickets", "status").get(value, value)
