"""What one callout does: classify, look up the lifecycle column, record atomically.

No Flask here: the view hands over a validated callout and its alert source,
and gets back the outcome to answer with.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings, SourceConfig
from .events import ilert_event
from .lifecycle import EVENT_TYPE, Action, State, column
from .schemas import Callout
from .store import Store, dumps_event

_SCHEDULING = frozenset(action.value for action in EVENT_TYPE)


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
        return 202 if self.action in _SCHEDULING else 200

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
    # One event per action the column may schedule (a column often names the same action
    # for two states); they differ only in "action", so the body is built once.
    event = ilert_event(
        source.name, callout.ticket_id, callout.record(), store.now_ms(), request_id=request_id
    )
    events: dict[Action, str] = {}
    for cell in cells.values():
        if cell.schedules_event and cell.action not in events:
            event["action"] = cell.action.value
            events[cell.action] = dumps_event(event)
    outcome = store.apply_callout(
        source.name,
        callout.ticket_id,
        status_class,
        cells,
        events,
        callout.last_activity_us,
        settings.resolved_retention_ms,
        callout.status,  # the audit record's words
    )
    return CalloutAnswer(callout.ticket_id, outcome.action, outcome.state, outcome.previous)
