"""The callout path's shortcuts (bench/findings.md) build exactly what the plain code built.

Each shortcut replaced a general construction by a cheaper one; these tests
hold the cheaper one to the output of the general one.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask

from flask_autotask_ilert.callouts import handle_callout
from flask_autotask_ilert.config import Settings, SourceConfig
from flask_autotask_ilert.lifecycle import Action, State, StatusClass, column, transition
from flask_autotask_ilert.schemas import Callout, parse_timestamp
from flask_autotask_ilert.store import CalloutOutcome, dumps_event

from .conftest import TOKEN

FORM = "application/x-www-form-urlencoded"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"


@pytest.mark.parametrize("status_class", list(StatusClass))
@pytest.mark.parametrize("realert", [False, True])
def test_a_column_is_the_table_and_a_fresh_dict_each_time(status_class: StatusClass, realert: bool) -> None:
    expected = {s: transition(s, status_class, realert_on_reopen=realert) for s in State}
    first = column(status_class, realert_on_reopen=realert)
    assert first == expected and list(first) == list(State)
    first.clear()
    assert column(status_class, realert_on_reopen=realert) == expected


def test_dumps_event_is_compact_sorted_json() -> None:
    event = {"z": 1, "a": {"y": None, "b": "é\n"}, "m": [1.5, True]}
    assert dumps_event(event) == json.dumps(event, separators=(",", ":"), sort_keys=True)


class _Recorder:
    """A store that records what the callout would write."""

    def __init__(self) -> None:
        self.events: dict[Action, str] = {}

    def now_ms(self) -> int:
        return 1_700_000_000_000

    def apply_callout(self, source: str, ticket: int, status_class: StatusClass, cells: Any,
                      events: dict[Action, str], *rest: Any, **options: Any) -> CalloutOutcome:
        self.events = dict(events)
        return CalloutOutcome("nothing", State.NONE, State.NONE)


#: The actions a callout of each status may schedule, one per state of the column (lifecycle.md):
#: the same with or without re-alert on reopen, which only adds a second "create" cell.
SCHEDULED = {
    "New": ["create"],
    "In Progress": ["create", "accept"],
    "Complete": ["resolve"],
    "Waiting Customer": ["accept"],
    "Other": ["create"],
}


@pytest.mark.parametrize("status", list(SCHEDULED))
@pytest.mark.parametrize("realert", [False, True])
@pytest.mark.parametrize("request_id_given", [None, "req-1"])
def test_the_queued_events_are_one_per_action_as_built_per_cell(
    make_app: Any, status: str, realert: bool, request_id_given: str | None
) -> None:
    app: Flask = make_app(realert_on_reopen=realert)
    settings: Settings = app.extensions["autotask_ilert"].settings
    source: SourceConfig = next(iter(settings.sources.values()))
    callout = Callout(ticket_id=7865, status=status, number="T1", domain="D",
                      last_activity=parse_timestamp("2019-10-30T15:06:38.58300000-04:00:00"),
                      extra={"udf": "x"})
    store = _Recorder()
    handle_callout(settings, store, source, callout, request_id=request_id_given)  # type: ignore[arg-type]
    assert [action.value for action in store.events] == SCHEDULED[status]
    texts = list(store.events.values())
    # Compact JSON with sorted keys: what the queue and the dead letters keep, byte for byte.
    assert all(text == json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True) for text in texts)
    events = [json.loads(text) for text in texts]
    event_id = events[0]["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", event_id)
    assert events == [
        {
            "id": event_id, "target": "ilert", "action": action, "source": "default", "ticket": 7865,
            "callout": {"number": "T1", "status": status, "domain": "D",
                        "last_activity": "2019-10-30T19:06:38.583000+00:00", "extra": {"udf": "x"}},
            "queued_at": 1_700_000_000_000, "attempts": 0,
            **({"request_id": "req-1"} if request_id_given else {}),
        }
        for action in SCHEDULED[status]
    ]


@pytest.mark.parametrize("content_type",
                         [FORM, f"{FORM}; charset=utf-8", "Application/X-WWW-Form-Urlencoded"])
def test_a_form_is_read_whatever_the_spelling_of_its_content_type(make_app: Any, content_type: str) -> None:
    response = make_app().test_client().post(CALLOUT, data="id=5&status=New", content_type=content_type)
    assert response.status_code == 202 and response.json == {
        "ticket": 5, "action": "create", "state": "PENDING"}


def test_fields_given_twice_with_different_values_are_refused(make_app: Any) -> None:
    response = make_app().test_client().post(CALLOUT, data="id=5&status=New&status=Complete",
                                             content_type=FORM)
    assert response.status_code == 400
    assert response.json["errors"] == {"status": ["Given more than once."]}


@pytest.mark.parametrize(("realert", "answer"), [
    (False, {"ticket": 5, "action": "nothing", "state": "RESOLVED"}),
    (True, {"ticket": 5, "action": "create", "state": "PENDING"}),
])
def test_a_reopened_ticket_pages_again_only_with_realert_on_reopen(
    make_app: Any, realert: bool, answer: dict[str, Any]
) -> None:
    client = make_app(realert_on_reopen=realert).test_client()
    for status in ("New", "Complete"):
        client.post(CALLOUT, data=f"id=5&status={status}", content_type=FORM)
    assert client.post(CALLOUT, data="id=5&status=New", content_type=FORM).json == answer
