"""The lifecycle table of docs/lifecycle.md, cell by cell, and the label maps."""

from __future__ import annotations

import pytest

from flask_autotask_ilert import ConfigurationError
from flask_autotask_ilert.lifecycle import (
    Action,
    Priority,
    PriorityMap,
    State,
    StatusClass,
    StatusClassifier,
    column,
    transition,
)

from .conftest import AppFactory

N, IP, C, W, OT = (
    StatusClass.NEW,
    StatusClass.IN_PROGRESS,
    StatusClass.CLOSED,
    StatusClass.WAITING,
    StatusClass.OTHER,
)
CREATE, ACCEPT, RESOLVE, NOTHING, REJECT = (
    Action.CREATE,
    Action.ACCEPT,
    Action.RESOLVE,
    Action.NOTHING,
    Action.REJECT,
)

# Written out independently of the module's table, straight from the contract.
EXPECTED = {
    (State.NONE, N): (CREATE, State.PENDING),
    (State.NONE, IP): (CREATE, State.PENDING),
    (State.NONE, C): (REJECT, State.NONE),
    (State.NONE, W): (REJECT, State.NONE),
    (State.NONE, OT): (CREATE, State.PENDING),
    (State.PENDING, N): (NOTHING, State.PENDING),
    (State.PENDING, IP): (ACCEPT, State.ACCEPTED),
    (State.PENDING, C): (RESOLVE, State.RESOLVED),
    (State.PENDING, W): (ACCEPT, State.ACCEPTED),
    (State.PENDING, OT): (NOTHING, State.PENDING),
    (State.ACCEPTED, N): (NOTHING, State.ACCEPTED),
    (State.ACCEPTED, IP): (NOTHING, State.ACCEPTED),
    (State.ACCEPTED, C): (RESOLVE, State.RESOLVED),
    (State.ACCEPTED, W): (NOTHING, State.ACCEPTED),
    (State.ACCEPTED, OT): (NOTHING, State.ACCEPTED),
    (State.RESOLVED, N): (NOTHING, State.RESOLVED),
    (State.RESOLVED, IP): (NOTHING, State.RESOLVED),
    (State.RESOLVED, C): (NOTHING, State.RESOLVED),
    (State.RESOLVED, W): (NOTHING, State.RESOLVED),
    (State.RESOLVED, OT): (NOTHING, State.RESOLVED),
}


@pytest.mark.parametrize(("state", "status_class"), sorted(EXPECTED, key=str))
def test_every_cell_of_the_table(state: State, status_class: StatusClass) -> None:
    cell = transition(state, status_class)
    assert (cell.action, cell.new_state) == EXPECTED[(state, status_class)]


def test_the_table_covers_every_state_and_class() -> None:
    assert len(EXPECTED) == len(State) * len(StatusClass)


@pytest.mark.parametrize("status_class", [N, IP, OT])
def test_realert_on_reopen_creates_a_new_alert(status_class: StatusClass) -> None:
    cell = transition(State.RESOLVED, status_class, realert_on_reopen=True)
    assert (cell.action, cell.new_state) == (CREATE, State.PENDING)


@pytest.mark.parametrize("status_class", [C, W])
def test_realert_on_reopen_leaves_closed_and_waiting_alone(status_class: StatusClass) -> None:
    cell = transition(State.RESOLVED, status_class, realert_on_reopen=True)
    assert (cell.action, cell.new_state) == (NOTHING, State.RESOLVED)


def test_realert_on_reopen_changes_only_resolved_rows() -> None:
    for (state, status_class), expected in EXPECTED.items():
        if state is State.RESOLVED:
            continue
        cell = transition(state, status_class, realert_on_reopen=True)
        assert (cell.action, cell.new_state) == expected


def test_column_is_the_table_read_downwards() -> None:
    for status_class in StatusClass:
        col = column(status_class)
        assert set(col) == set(State)
        for state, cell in col.items():
            assert (cell.action, cell.new_state) == EXPECTED[(state, status_class)]


def test_only_create_accept_resolve_schedule_an_event() -> None:
    scheduling = {
        key for key in EXPECTED if transition(*key).schedules_event
    }
    assert scheduling == {k for k, (a, _) in EXPECTED.items() if a in (CREATE, ACCEPT, RESOLVE)}


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("New", N),
        ("  new ", N),
        ("IN PROGRESS", IP),
        ("In  Progress", IP),
        ("Complete", C),
        ("denied", C),
        ("Waiting Customer", W),
        ("Waiting Materials", W),
        ("Scheduled", W),
        ("Escalate", W),
        ("Waiting Vendor", W),
        ("Waiting Approval", W),
        ("Waiting Dispatch", W),
        ("Approved", W),
        ("Customer Note Added", OT),
        ("Dispatched", OT),
        ("", OT),
    ],
)
def test_default_status_classes(label: str, expected: StatusClass) -> None:
    assert StatusClassifier()(label) is expected


def test_status_classes_are_configurable() -> None:
    classify = StatusClassifier({N: ["Neu"], C: ["Erledigt"]})
    assert classify("neu") is N
    assert classify("Erledigt") is C
    assert classify("New") is OT  # the tenant renamed it; the default no longer applies


def test_a_label_in_two_classes_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        StatusClassifier({N: ["New"], C: ["new"]})


@pytest.mark.parametrize("labels", [["Customer Note Added"], []])
def test_other_takes_no_labels_and_the_app_says_so_at_start(make_app: AppFactory, labels: list[str]) -> None:
    # OTHER is whatever no class lists; labels listed for it would suggest a choice that does not exist.
    with pytest.raises(ConfigurationError, match=r": OTHER is every label not listed; it takes no labels$"):
        make_app(status_labels={"OTHER": labels})
    with pytest.raises(ValueError, match=r"^OTHER is every label not listed; it takes no labels$"):
        StatusClassifier({OT: labels})


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Low", Priority.LOW),
        (" low ", Priority.LOW),
        ("High", Priority.HIGH),
        ("Medium", Priority.HIGH),
        ("Critical", Priority.HIGH),
        ("Something new", Priority.HIGH),
        (None, Priority.HIGH),
    ],
)
def test_default_priority_map(label: str | None, expected: Priority) -> None:
    assert PriorityMap()(label) is expected


def test_priority_map_is_configurable() -> None:
    priority = PriorityMap({"Low": "LOW", "Medium": "LOW"})
    assert priority("medium") is Priority.LOW
    assert priority("High") is Priority.HIGH


# -- ilert -> Autotask ----------------------------------------------------------------------------

from flask_autotask_ilert.lifecycle import IlertStatus, SyncAction, sync_transition  # noqa: E402

ACC, RES, PEN = IlertStatus.ACCEPTED, IlertStatus.RESOLVED, IlertStatus.PENDING


@pytest.mark.parametrize("last_class", list(StatusClass))
def test_accepted_in_ilert_moves_only_new_tickets_to_in_progress(last_class: StatusClass) -> None:
    cell = sync_transition(State.PENDING, last_class, ACC)
    assert cell.action is SyncAction.ACCEPT_TICKET and cell.new_state is State.ACCEPTED
    assert cell.set_status is (last_class is N)


@pytest.mark.parametrize("state", [State.PENDING, State.ACCEPTED])
@pytest.mark.parametrize("last_class", list(StatusClass))
def test_resolved_in_ilert_completes_unless_already_closed(state: State, last_class: StatusClass) -> None:
    cell = sync_transition(state, last_class, RES)
    assert cell.action is SyncAction.RESOLVE_TICKET and cell.new_state is State.RESOLVED
    assert cell.set_status is (last_class is not C)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (State.ACCEPTED, ACC),  # the same state already
        (State.RESOLVED, RES),
        (State.RESOLVED, ACC),  # RESOLVED is final for ilert's side
        (State.NONE, ACC),  # not ours
        (State.NONE, RES),
        (State.PENDING, PEN),  # PENDING never does anything
        (State.ACCEPTED, PEN),
        (State.RESOLVED, PEN),
        (State.NONE, PEN),
    ],
)
def test_everything_else_from_ilert_changes_nothing(state: State, status: IlertStatus) -> None:
    cell = sync_transition(state, N, status)
    assert cell.action is SyncAction.NOTHING and cell.new_state is state and not cell.set_status
    assert not cell.writes_ticket


# -- the statuses the bridge writes, read back through the table ----------------------------------

from flask_autotask_ilert.lifecycle import written_label_problems  # noqa: E402

#: Straight from the contract: the class of the status written on an ilert ACCEPTED must make
#: the echo callout "accept" a PENDING alert; that of RESOLVED, "resolve" an open one.
ACCEPTS_IN_THE_TABLE = {c for (s, c), (a, _) in EXPECTED.items() if s is State.PENDING and a is ACCEPT}
RESOLVES_IN_THE_TABLE = {c for (s, c), (a, _) in EXPECTED.items() if s is State.ACCEPTED and a is RESOLVE}
LABEL_OF = {N: "New", IP: "In Progress", C: "Complete", W: "Waiting Customer", OT: "Customer Note Added"}


@pytest.mark.parametrize("accept_class", list(StatusClass))
@pytest.mark.parametrize("resolve_class", list(StatusClass))
def test_written_statuses_must_classify_as_the_table_needs(
    accept_class: StatusClass, resolve_class: StatusClass
) -> None:
    problems = written_label_problems(
        StatusClassifier(), LABEL_OF[accept_class], LABEL_OF[resolve_class]
    )
    assert any(p.startswith("ACCEPT_STATUS") for p in problems) is (
        accept_class not in ACCEPTS_IN_THE_TABLE
    )
    assert any(p.startswith("RESOLVE_STATUS") for p in problems) is (
        resolve_class not in RESOLVES_IN_THE_TABLE
    )


@pytest.mark.parametrize("status_class", [N, IP, OT])
def test_a_resolve_status_that_is_not_closed_would_page_again_on_reopen(status_class: StatusClass) -> None:
    """Why the rule exists: with re-alert on reopen, its echo callout would create an alert."""
    assert transition(State.RESOLVED, status_class, realert_on_reopen=True).action is CREATE
    assert written_label_problems(StatusClassifier(), "In Progress", LABEL_OF[status_class])
