"""What one callout does: classify, look up the lifecycle column, record atomically.

No Flask here: the view hands over a validated callout and its alert source,
and gets back the outcome to answer with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import Settings, SourceConfig
from .events import ilert_event
from .lifecycle import EVENT_TYPE, Action, State, column
from .metrics import count_future_timestamp
from .schemas import Callout, from_micros
from .store import Store, dumps_event

_SCHEDULING = frozenset(action.value for action in EVENT_TYPE)

logger = logging.getLogger("flask_autotask_ilert")


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
    last_activity_us = _usable_time(settings, store, source, callout)
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
        last_activity_us,
        settings.resolved_retention_ms,
        settings.clock_skew_ms,
        label=callout.status,  # the audit record's words
    )
    return CalloutAnswer(callout.ticket_id, outcome.action, outcome.state, outcome.previous)


def _usable_time(settings: Settings, store: Store, source: SourceConfig, callout: Callout) -> int | None:
    """The callout's activity time, or None when it is too far ahead of this host's clock.

    A time from the future would make every real callout after it stale (a ticket
    frozen until the year 2999), so it orders nothing; the store applies the same
    limit to the time it holds. Said once per callout in the log and counted.
    """
    last_us = callout.last_activity_us
    if last_us is None:
        return None
    ahead_ms = last_us / 1000 - store.now_ms()  # to the µs, as callout.lua compares it
    if ahead_ms <= settings.clock_skew_ms:
        return last_us
    when = from_micros(last_us)
    logger.warning(
        "callout source=%s ticket=%s: last_activity_datetime %s is %.0f s ahead of this host's "
        "clock (more than CLOCK_SKEW_SECONDS=%.0f); not used to order callouts",
        source.name, callout.ticket_id, when.isoformat(),
        ahead_ms / 1000, settings.clock_skew_ms / 1000,
    )
    count_future_timestamp(source.name)
    return None
