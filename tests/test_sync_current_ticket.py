"""Ticket writes act on the ticket as Autotask has it now, and a note never fails a status change.

Against the simulators over loopback: the Autotask simulator keeps the ticket a
person moves (without any callout reaching the bridge), and is strict about
note picklist values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.testing.autotask_sim import (
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    AutotaskState,
    create_autotask_simulator,
)
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread
from flask_autotask_ilert.tickets import _warned

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, drain

WEBHOOK_TOKEN = "current-ticket-webhook-token-0123456789"


class Sims:
    def __init__(self, autotask: AutotaskState, ilert: IlertState, at_url: str, il_url: str) -> None:
        self.autotask, self.ilert, self.at_url, self.il_url = autotask, ilert, at_url, il_url


@pytest.fixture
def sims() -> Iterator[Sims]:
    autotask, ilert = AutotaskState(), IlertState(integration_keys=[INTEGRATION_KEY])
    with ServerThread(create_autotask_simulator(autotask)) as at, \
            ServerThread(create_ilert_simulator(ilert)) as il:
        yield Sims(autotask, ilert, at.url, il.url)


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    _warned.clear()  # "warn once" is per process; each test starts afresh
    yield
    _warned.clear()


def make(make_app: AppFactory, sims: Sims, clock: Clock, **extra: Any) -> Flask:
    clock.now = time.time()
    return make_app(
        ilert_api_url=sims.il_url,
        ilert_rate_limit=0,
        autotask_username=DEFAULT_USER,
        autotask_secret=DEFAULT_SECRET,
        autotask_integration_code=DEFAULT_CODE,
        autotask_api_url=f"{sims.at_url}/atservicesrest",
        bidirectional=True,
        webhook_token=WEBHOOK_TOKEN,
        **extra,
    )


def paged_ticket(app: Flask, sims: Sims) -> int:
    """A ticket the bridge paged for (its callout delivered by hand, so later ones are lost)."""
    ticket = sims.autotask.add_ticket("Backup failed")["id"]
    answer = app.test_client().post(f"/autotask-ilert/callout/{TOKEN}",
                                    data={"id": str(ticket), "status": "New"})
    assert answer.status_code == 202
    drain(app)
    return int(ticket)


def webhook(app: Flask, ticket: int, status: str) -> None:
    body = {"id": "4711", "status": status, "alertKey": f"autotask-{ticket}",
            "assignedTo": {"username": "jdoe", "firstName": "Jane", "lastName": "Doe"}}
    assert app.test_client().post(f"/autotask-ilert/ilert/{WEBHOOK_TOKEN}", json=body).status_code == 202


def patches(sims: Sims) -> list[Any]:
    return [c.json_body for c in sims.autotask.calls_matching("PATCH", "/Tickets")]


@pytest.mark.parametrize("moved_to", ["Waiting Customer", "Complete"])
def test_an_accept_never_moves_back_a_ticket_a_person_moved(
    make_app: AppFactory, sims: Sims, clock: Clock, moved_to: str
) -> None:
    app = make(make_app, sims, clock)
    ticket = paged_ticket(app, sims)
    sims.autotask.set_status(ticket, moved_to)  # no callout reaches the bridge (business hours)
    webhook(app, ticket, "ACCEPTED")
    drain(app)
    assert patches(sims) == []
    assert sims.autotask.status_label(ticket) == moved_to
    [note] = sims.autotask.notes(ticket)
    assert "accepted in ilert by Jane Doe" in note["description"]
    assert f"status was left at {moved_to}: it had changed in Autotask meanwhile" in note["description"]
    reads = sims.autotask.calls_matching("GET", f"/Tickets/{ticket}")
    assert len(reads) == 2  # one when paging, one before the write


def test_a_resolve_completes_a_ticket_still_open_and_says_so(
    make_app: AppFactory, sims: Sims, clock: Clock
) -> None:
    app = make(make_app, sims, clock)
    ticket = paged_ticket(app, sims)
    sims.autotask.set_status(ticket, "Waiting Customer")  # still open: resolving completes it
    webhook(app, ticket, "RESOLVED")
    drain(app)
    assert sims.autotask.status_label(ticket) == "Complete"
    [note] = sims.autotask.notes(ticket)
    assert "The ticket's status was set to Complete." in note["description"]


def test_a_ticket_completed_in_autotask_is_not_completed_again(
    make_app: AppFactory, sims: Sims, clock: Clock
) -> None:
    app = make(make_app, sims, clock)
    ticket = paged_ticket(app, sims)
    sims.autotask.set_status(ticket, "Complete")
    webhook(app, ticket, "RESOLVED")
    drain(app)
    assert patches(sims) == []
    [note] = sims.autotask.notes(ticket)
    assert "left at Complete" in note["description"]


@pytest.mark.parametrize("field", ["noteType", "publish"])
def test_a_note_field_without_a_default_uses_the_first_active_value(
    make_app: AppFactory, sims: Sims, clock: Clock, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    values = (sims.autotask.note_type_picklist if field == "noteType"
              else sims.autotask.note_publish_picklist)
    for value in values:
        value["isDefaultValue"] = False
    values[0]["isActive"] = False  # the first by sortOrder that is active is the second
    values[1]["sortOrder"], values[-1]["sortOrder"] = 99, 2  # ... and the last is first now
    expected = int(values[-1]["value"])
    app = make(make_app, sims, clock)
    tickets = [paged_ticket(app, sims) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="flask_autotask_ilert"):
        for ticket in tickets:
            webhook(app, ticket, "ACCEPTED")
        drain(app)
    for ticket in tickets:
        assert sims.autotask.status_label(ticket) == "In Progress"
        [note] = sims.autotask.notes(ticket)
        assert note[field] == expected
    assert get_bridge(app).store.dead_letters() == []
    warnings = [r.getMessage() for r in caplog.records if f"TicketNotes.{field}" in r.getMessage()]
    assert len(warnings) == 1  # once, not per note
    assert "has no default value" in warnings[0] and repr(values[-1]["label"]) in warnings[0]


def test_a_configured_note_label_the_tenant_lacks_falls_back_to_its_default(
    make_app: AppFactory, sims: Sims, clock: Clock
) -> None:
    app = make(make_app, sims, clock, note_type="No Such Type")
    ticket = paged_ticket(app, sims)
    webhook(app, ticket, "RESOLVED")
    drain(app)
    assert sims.autotask.status_label(ticket) == "Complete"
    [note] = sims.autotask.notes(ticket)
    assert note["noteType"] == 1  # General, the tenant's default
    assert get_bridge(app).store.dead_letters() == []


def test_check_warns_with_the_values_to_choose_from(
    make_app: AppFactory, sims: Sims, clock: Clock
) -> None:
    for value in sims.autotask.note_publish_picklist:
        value["isDefaultValue"] = False
    app = make(make_app, sims, clock)
    result = app.test_cli_runner().invoke(args=["autotask-ilert", "check"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "autotask sync" in x)
    assert line.split()[0] == "WARN"
    assert "NOTE_PUBLISH: the tenant has no default note publish" in line
    assert "'All Autotask Users', 'Internal Only'" in line
