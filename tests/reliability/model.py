"""An independent model of the lifecycle, written from docs/lifecycle.md and docs/sync.md.

It imports nothing of the package, so a mistake in the package's table cannot
hide here. It follows callouts (with the stale rule on ``last_activity``) and
ilert webhooks per (source, ticket), and says what ilert must have received,
which ticket writes Autotask must have seen, and what each request is answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEW, IN_PROGRESS, CLOSED, WAITING, OTHER = "NEW", "IN_PROGRESS", "CLOSED", "WAITING", "OTHER"

#: The default status labels of docs/lifecycle.md; anything else is OTHER.
LABELS = {
    "new": NEW,
    "in progress": IN_PROGRESS,
    "complete": CLOSED,
    "denied": CLOSED,
    "waiting customer": WAITING,
    "waiting materials": WAITING,
    "scheduled": WAITING,
    "escalate": WAITING,
    "waiting vendor": WAITING,
    "waiting approval": WAITING,
    "waiting dispatch": WAITING,
    "approved": WAITING,
}

#: Labels the scenarios walk through (all exist in the Autotask simulator's picklist).
WALK_LABELS = ("New", "In Progress", "Complete", "Waiting Customer", "Scheduled", "Customer Note Added")

#: What ilert's alert status is for each stored state (no alert for NONE).
ILERT_STATUS = {"PENDING": "PENDING", "ACCEPTED": "ACCEPTED", "RESOLVED": "RESOLVED"}


def status_class(label: str) -> str:
    return LABELS.get(" ".join(label.split()).casefold(), OTHER)


@dataclass
class Ticket:
    state: str = "NONE"
    last_class: str | None = None
    last_activity: int | None = None
    stored: bool = False  # a mapping exists (a reject never stores one)
    events: list[str] = field(default_factory=list)  # ALERT / ACCEPT / RESOLVE, in order
    writes: list[tuple[str, bool]] = field(default_factory=list)  # (accept|resolve, status set)


@dataclass(frozen=True)
class Answer:
    code: int
    action: str
    state: str | None


class Model:
    def __init__(self) -> None:
        self.tickets: dict[tuple[str, int], Ticket] = {}

    def ticket(self, source: str, ticket: int) -> Ticket:
        return self.tickets.setdefault((source, ticket), Ticket())

    def callout(self, source: str, ticket: int, label: str, last_activity: int | None = None) -> Answer:
        t = self.ticket(source, ticket)
        if last_activity is not None and t.last_activity is not None and last_activity < t.last_activity:
            return Answer(200, "stale", t.state)
        cls = status_class(label)
        state = t.state
        if state == "NONE":
            if cls in (CLOSED, WAITING):
                if last_activity is not None:  # not tracked, but its time is remembered
                    t.last_activity = max(last_activity, t.last_activity or last_activity)
                return Answer(400, "reject", "NONE")
            action, new = "create", "PENDING"
        elif state == "PENDING" and cls in (IN_PROGRESS, WAITING):
            action, new = "accept", "ACCEPTED"
        elif state in ("PENDING", "ACCEPTED") and cls == CLOSED:
            action, new = "resolve", "RESOLVED"
        else:
            action, new = "nothing", state
        t.state, t.last_class, t.stored = new, cls, True
        if last_activity is not None:
            t.last_activity = max(last_activity, t.last_activity or last_activity)
        if action == "nothing":
            return Answer(200, action, new)
        t.events.append({"create": "ALERT", "accept": "ACCEPT", "resolve": "RESOLVE"}[action])
        return Answer(202, action, new)

    def webhook(self, source: str, ticket: int, ilert_status: str) -> Answer:
        t = self.tickets.get((source, ticket))
        if t is None or not t.stored:
            return Answer(200, "ignored", None)
        if ilert_status == "ACCEPTED" and t.state == "PENDING":
            t.writes.append(("accept", t.last_class == NEW))
            t.state = "ACCEPTED"
            return Answer(202, "accept-ticket", "ACCEPTED")
        if ilert_status == "RESOLVED" and t.state in ("PENDING", "ACCEPTED"):
            t.writes.append(("resolve", t.last_class != CLOSED))
            t.state = "RESOLVED"
            return Answer(202, "resolve-ticket", "RESOLVED")
        return Answer(200, "nothing", t.state)

    # -- what the outside world must show ----------------------------------------------

    def expected_events(self, source: str | None = None) -> dict[tuple[str, int], list[str]]:
        return {k: t.events for k, t in self.tickets.items() if t.events and source in (None, k[0])}

    def expected_alert_status(self, source: str, ticket: int) -> str | None:
        """The ilert alert's status, or None when there must be no alert at all."""
        t = self.tickets.get((source, ticket))
        if t is None or not t.events:
            return None
        return ILERT_STATUS[t.state]

    def event_count(self) -> int:
        return sum(len(t.events) for t in self.tickets.values())

    def write_count(self) -> int:
        return sum(len(t.writes) for t in self.tickets.values())
