"""Writing an alert's status back to its ticket: the default Autotask writer and its interface.

A host app can replace the Autotask write with its own ``TICKET_UPDATER`` (to
mirror status into its own database or another system): any callable that
takes a :class:`TicketUpdate`. It is called from the delivery worker, with the
same retries as every other delivery: raise :class:`TicketUpdateError` with
``retryable=False`` to give up (the update is dead-lettered), any other
exception to be called again later with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .autotask import AutotaskClient
from .errors import AutotaskIlertError

STATUS_STEP = "status"
NOTE_STEP = "note"


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
            status = self._value("Tickets", "status", update.status_label)
            self.client.update_ticket(update.ticket_id, {"status": status})
            update.checkpoint(STATUS_STEP)
        if NOTE_STEP not in update.completed:
            self.client.add_note(
                update.ticket_id,
                update.note_title,
                update.note_text,
                note_type=self._value("TicketNotes", "noteType", self.note_type),
                publish=self._value("TicketNotes", "publish", self.note_publish),
            )
            update.checkpoint(NOTE_STEP)

    def _value(self, entity: str, field_name: str, label: str | None) -> int:
        if label is None:
            value = self.client.default_value(entity, field_name)
            if value is None:
                raise TicketUpdateError(
                    f"{entity}.{field_name} has no default value: configure a label",
                    retryable=False,
                )
            return value
        value = self.client.label_to_value(entity, field_name, label)
        if value is None:
            raise TicketUpdateError(
                f"{entity}.{field_name} has no value labelled {label!r} in this tenant",
                retryable=False,
            )
        return value
