"""What one callout does: classify, look up the lifecycle column, record atomically.

No Flask here: the view hands over a validated callout and its alert source,
and gets back the outcome to answer with.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .config import Settings, SourceConfig
from .lifecycle import EVENT_TYPE, Action, State, column
from .schemas import Callout
from .store import Store, dumps_event


@dataclass(frozen=True)
class CalloutAnswer:
    ticket: int
    action: str
    state: State
    previous: State

    @property
    def http_status(self) -> int:
        if self.action == Action.REJECT.value:
            return 400
        return 202 if self.action in {a.value for a in EVENT_TYPE} else 200

    def body(self) -> dict[str, object]:
        return {"ticket": self.ticket, "action": self.action, "state": self.state.value}


def handle_callout(
    settings: Settings, store: Store, source: SourceConfig, callout: Callout,
    request_id: str | None = None,
) -> CalloutAnswer:
    """Apply the lifecycle to one callout; the event it schedules is queued in the same step.

    ``request_id`` travels with the event so that its delivery lines can be
    matched to this callout's line in the logs.
    """
    status_class = source.classify(callout.status)
    cells = column(status_class, realert_on_reopen=source.realert_on_reopen)
    event_id = uuid.uuid4().hex
    queued_at = store.now_ms()
    events = {
        cell.action: dumps_event(
            {
                "id": event_id,
                "target": "ilert",
                "action": cell.action.value,
                "source": source.name,
                "ticket": callout.ticket_id,
                "callout": callout.record(),
                "queued_at": queued_at,
                "attempts": 0,
                **({"request_id": request_id} if request_id else {}),
            }
        )
        for cell in cells.values()
        if cell.schedules_event
    }
    outcome = store.apply_callout(
        source.name,
        callout.ticket_id,
        status_class,
        cells,
        events,
        callout.last_activity_us,
        settings.resolved_retention_ms,
    )
    return CalloutAnswer(callout.ticket_id, outcome.action, outcome.state, outcome.previous)
