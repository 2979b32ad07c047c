"""Sending one dead letter again: shared by the ``replay`` command and host apps' pages.

A dead letter is replayed as if just queued, and only while the ticket is still
in a state where the event makes sense: a create for a ticket resolved since
would page for nothing, so it stays dead unless forced.
"""

from __future__ import annotations

import json
from typing import Any

from .audit import REPLAYED, Entry
from .lifecycle import State
from .store import Store

#: The ticket states in which a dead event still makes sense: an alert create or accept for
#: a ticket resolved since, or a ticket write the ticket has moved past, stays dead.
REPLAY_STATES: dict[tuple[str, str], tuple[State, ...]] = {
    ("ilert", "create"): (State.PENDING, State.ACCEPTED),
    ("ilert", "accept"): (State.ACCEPTED,),
    ("ticket", "accept-ticket"): (State.ACCEPTED,),
    ("ticket", "resolve-ticket"): (State.RESOLVED,),
}

#: What :func:`replay_record` returns.
REPLAYED_OK, ALREADY_GONE, MOVED_ON = 1, 0, -1


def fresh(event: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The event as if just queued: no attempts, no pacing slot, the alert body built anew."""
    renewed = {k: v for k, v in event.items() if k not in ("slot", "body", "enrich_attempts")}
    renewed.update(attempts=0, queued_at=now_ms, replays=int(event.get("replays", 0)) + 1,
                   first_queued_at=event.get("first_queued_at", event.get("queued_at")))
    return renewed


def replay_record(store: Store, record: str, force: bool = False) -> int:
    """Queue the event of ``record`` (as :meth:`Store.dead_records` gives it) again.

    1 when queued, 0 when the record had already left the dead list, -1 when
    the ticket has moved on (kept dead; ``force`` replays it anyway).
    """
    event = json.loads(record).get("event") or {}
    states = () if force else REPLAY_STATES.get((str(event.get("target")), str(event.get("action"))), ())
    return store.replay_dead(record, fresh(event, store.now_ms()), states,
                             audit_entry=Entry.delivery(REPLAYED, event))
