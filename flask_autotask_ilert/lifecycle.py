"""The ticket -> alert lifecycle as data.

Everything here is pure: no I/O, no Flask, nothing of the project imported.
The table is the contract (docs/lifecycle.md); code elsewhere never decides a
transition by itself. The store receives a whole *column* of the table (what
to do for each stored state, given the callout's status class) so that Redis
can pick the cell against the state it holds, atomically, in one round trip.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class State(str, enum.Enum):
    """Mapping state for one ticket of one alert source."""

    NONE = "NONE"
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    RESOLVED = "RESOLVED"


class StatusClass(str, enum.Enum):
    NEW = "NEW"
    IN_PROGRESS = "IN_PROGRESS"
    CLOSED = "CLOSED"
    WAITING = "WAITING"
    OTHER = "OTHER"


class Action(str, enum.Enum):
    """What a callout does. CREATE, ACCEPT and RESOLVE each schedule one ilert event."""

    CREATE = "create"
    ACCEPT = "accept"
    RESOLVE = "resolve"
    NOTHING = "nothing"
    REJECT = "reject"


#: ilert ``eventType`` sent for each scheduling action.
EVENT_TYPE: Mapping[Action, str] = {
    Action.CREATE: "ALERT",
    Action.ACCEPT: "ACCEPT",
    Action.RESOLVE: "RESOLVE",
}


@dataclass(frozen=True)
class Transition:
    action: Action
    new_state: State

    @property
    def schedules_event(self) -> bool:
        return self.action in EVENT_TYPE


_S, _C, _A = State, StatusClass, Action


def _t(action: Action, state: State) -> Transition:
    return Transition(action, state)


def _stay(state: State) -> Transition:
    return Transition(Action.NOTHING, state)


# The table of lifecycle.md, row by row. REJECT leaves the state at NONE.
TABLE: Mapping[State, Mapping[StatusClass, Transition]] = {
    _S.NONE: {
        _C.NEW: _t(_A.CREATE, _S.PENDING),
        _C.IN_PROGRESS: _t(_A.CREATE, _S.PENDING),
        _C.CLOSED: _t(_A.REJECT, _S.NONE),
        _C.WAITING: _t(_A.REJECT, _S.NONE),
        _C.OTHER: _t(_A.CREATE, _S.PENDING),
    },
    _S.PENDING: {
        _C.NEW: _stay(_S.PENDING),
        _C.IN_PROGRESS: _t(_A.ACCEPT, _S.ACCEPTED),
        _C.CLOSED: _t(_A.RESOLVE, _S.RESOLVED),
        _C.WAITING: _t(_A.ACCEPT, _S.ACCEPTED),
        _C.OTHER: _stay(_S.PENDING),
    },
    _S.ACCEPTED: {
        _C.NEW: _stay(_S.ACCEPTED),
        _C.IN_PROGRESS: _stay(_S.ACCEPTED),
        _C.CLOSED: _t(_A.RESOLVE, _S.RESOLVED),
        _C.WAITING: _stay(_S.ACCEPTED),
        _C.OTHER: _stay(_S.ACCEPTED),
    },
    _S.RESOLVED: {c: _stay(_S.RESOLVED) for c in StatusClass},
}

# "Re-alert on reopen" replaces exactly the cells marked (*) in lifecycle.md.
REOPEN_CELLS: Mapping[StatusClass, Transition] = {
    _C.NEW: _t(_A.CREATE, _S.PENDING),
    _C.IN_PROGRESS: _t(_A.CREATE, _S.PENDING),
    _C.OTHER: _t(_A.CREATE, _S.PENDING),
}


def transition(state: State, status_class: StatusClass, *, realert_on_reopen: bool = False) -> Transition:
    """The cell of the table for a stored state and a callout's status class."""
    if realert_on_reopen and state is State.RESOLVED and status_class in REOPEN_CELLS:
        return REOPEN_CELLS[status_class]
    return TABLE[state][status_class]


def column(status_class: StatusClass, *, realert_on_reopen: bool = False) -> dict[State, Transition]:
    """Every stored state's transition for one status class (what the store script needs)."""
    return dict(_column(status_class, realert_on_reopen))


@functools.cache
def _column(status_class: StatusClass, realert_on_reopen: bool) -> tuple[tuple[State, Transition], ...]:
    """Ten possible columns, each looked up on every callout: built once (the table is constant)."""
    return tuple(
        (state, transition(state, status_class, realert_on_reopen=realert_on_reopen))
        for state in State
    )


def fold(label: str) -> str:
    """Status and priority labels compare trimmed and case-folded (tenants rename them)."""
    return " ".join(label.split()).casefold()


DEFAULT_STATUS_LABELS: Mapping[StatusClass, tuple[str, ...]] = {
    _C.NEW: ("New",),
    _C.IN_PROGRESS: ("In Progress",),
    _C.CLOSED: ("Complete", "Denied"),
    _C.WAITING: (
        "Waiting Customer",
        "Waiting Materials",
        "Scheduled",
        "Escalate",
        "Waiting Vendor",
        "Waiting Approval",
        "Waiting Dispatch",
        "Approved",
    ),
}


class StatusClassifier:
    """Maps a status label to its class; labels not listed anywhere are OTHER."""

    def __init__(self, labels: Mapping[StatusClass, Iterable[str]] = DEFAULT_STATUS_LABELS) -> None:
        self._by_label: dict[str, StatusClass] = {}
        for status_class, class_labels in labels.items():
            if status_class is StatusClass.OTHER:
                raise ValueError("OTHER is every label not listed; it takes no labels")
            for label in class_labels:
                folded = fold(label)
                clash = self._by_label.get(folded)
                if clash is not None and clash is not status_class:
                    raise ValueError(
                        f"status label {label!r} is in both {clash.value} and {status_class.value}"
                    )
                self._by_label[folded] = status_class

    def __call__(self, label: str) -> StatusClass:
        return self._by_label.get(fold(label), StatusClass.OTHER)


class Priority(str, enum.Enum):
    HIGH = "HIGH"
    LOW = "LOW"


DEFAULT_PRIORITY_MAP: Mapping[str, Priority] = {"Low": Priority.LOW}


class PriorityMap:
    """Autotask priority label -> ilert priority; anything not listed (or unknown) pages HIGH."""

    def __init__(
        self,
        labels: Mapping[str, Priority | str] = DEFAULT_PRIORITY_MAP,
        default: Priority = Priority.HIGH,
    ) -> None:
        self._by_label = {fold(k): Priority(v) for k, v in labels.items()}
        self.default = default

    def __call__(self, label: str | None) -> Priority:
        if label is None:
            return self.default
        return self._by_label.get(fold(label), self.default)


# -- ilert -> Autotask (bidirectional mode) -------------------------------------------------


class IlertStatus(str, enum.Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    RESOLVED = "RESOLVED"


class SyncAction(str, enum.Enum):
    """What an ilert alert-action webhook does to the mapping and the ticket."""

    ACCEPT_TICKET = "accept-ticket"
    RESOLVE_TICKET = "resolve-ticket"
    NOTHING = "nothing"


@dataclass(frozen=True)
class SyncRule:
    action: SyncAction
    new_state: State
    #: The ticket's status is changed only if its last known class is one of these;
    #: the note is written either way.
    set_status_for: frozenset[StatusClass] = frozenset()


_ACCEPT = SyncRule(SyncAction.ACCEPT_TICKET, State.ACCEPTED, frozenset({StatusClass.NEW}))
_RESOLVE = SyncRule(
    SyncAction.RESOLVE_TICKET, State.RESOLVED, frozenset(StatusClass) - {StatusClass.CLOSED}
)

# The ilert -> Autotask table of lifecycle.md; every pair not listed changes nothing.
SYNC_TABLE: Mapping[tuple[IlertStatus, State], SyncRule] = {
    (IlertStatus.ACCEPTED, State.PENDING): _ACCEPT,
    (IlertStatus.RESOLVED, State.PENDING): _RESOLVE,
    (IlertStatus.RESOLVED, State.ACCEPTED): _RESOLVE,
}


@dataclass(frozen=True)
class SyncTransition:
    action: SyncAction
    new_state: State
    set_status: bool

    @property
    def writes_ticket(self) -> bool:
        return self.action is not SyncAction.NOTHING


def sync_transition(
    state: State, last_class: StatusClass | None, ilert_status: IlertStatus
) -> SyncTransition:
    """What an alert status reported by ilert does, given the stored state and ticket class."""
    rule = SYNC_TABLE.get((ilert_status, state))
    if rule is None:
        return SyncTransition(SyncAction.NOTHING, state, False)
    return SyncTransition(rule.action, rule.new_state, last_class in rule.set_status_for)


#: The classes a status the bridge writes on an ilert ACCEPTED may have: the lifecycle table
#: answers a callout of either with "accept" (or nothing once accepted), never a new alert.
ACCEPTING_CLASSES = frozenset({StatusClass.IN_PROGRESS, StatusClass.WAITING})


def written_label_problems(
    classify: StatusClassifier, accept_status: str, resolve_status: str
) -> list[str]:
    """Why the status labels bidirectional sync writes would not mean what they say (empty: fine).

    The bridge reads its own ticket edits back through the callout Autotask fires
    for them. A resolve status that is not CLOSED would leave the alert's ticket
    open in the table's eyes, and with re-alert on reopen page again for a ticket
    just resolved in ilert; an accept status that does not accept could do the same.
    """
    problems = []
    accept_class = classify(accept_status)
    if accept_class not in ACCEPTING_CLASSES:
        problems.append(
            f"ACCEPT_STATUS {accept_status!r} is a {accept_class.value} status; it must be one "
            "that accepts (IN_PROGRESS or WAITING, see STATUS_LABELS)"
        )
    resolve_class = classify(resolve_status)
    if resolve_class is not StatusClass.CLOSED:
        problems.append(
            f"RESOLVE_STATUS {resolve_status!r} is a {resolve_class.value} status; it must be a "
            "CLOSED one (see STATUS_LABELS)"
        )
    return problems


def status_change_still_wanted(action: SyncAction, last_class: StatusClass | None) -> bool:
    """Re-checked just before a queued ticket write: the ticket may have moved in Autotask.

    Only the ticket's own class decides: a ticket completed in Autotask while an
    accept from ilert waited in the queue must not be put back to In Progress,
    while an accept followed by a resolve in ilert still writes both, one
    status change for each thing a person did. The note is written either way.
    """
    rule = {SyncAction.ACCEPT_TICKET: _ACCEPT, SyncAction.RESOLVE_TICKET: _RESOLVE}.get(action)
    return rule is not None and last_class in rule.set_status_for


#: The ticket states in which a dead event, replayed, still does what it was queued for,
#: by (target, action). The ticket may have moved on while the event lay dead: an alert
#: create or accept for a ticket resolved since would page someone about work that is
#: done, and a ticket write the ticket has moved past would undo a newer change. Such an
#: event stays dead unless the operator forces it. An event not listed replays in any state.
REPLAY_STATES: Mapping[tuple[str, str], tuple[State, ...]] = {
    ("ilert", "create"): (State.PENDING, State.ACCEPTED),
    ("ilert", "accept"): (State.ACCEPTED,),
    ("ticket", "accept-ticket"): (State.ACCEPTED,),
    ("ticket", "resolve-ticket"): (State.RESOLVED,),
}


def replay_states(target: str, action: str) -> tuple[State, ...]:
    """The states in which a dead (target, action) event may be replayed (empty: any)."""
    return REPLAY_STATES.get((target, action), ())
