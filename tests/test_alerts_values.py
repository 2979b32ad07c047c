"""The ilert event bodies field by field, with every expected value written out.

alerts.py is pure: these tests build bodies from hand-made queued events and
compare them, whole, with the body ilert should receive. Limits are numbers here
(255 characters of summary, 20,000 of details, 64 bytes of kept summary), not
imported, so a moved limit fails a test instead of moving it.
"""

from __future__ import annotations

from typing import Any

import pytest

from flask_autotask_ilert.alerts import (
    TicketFacts,
    alert_key,
    apply_text,
    build_event,
    fallback_summary,
    kept_summary,
)
from flask_autotask_ilert.events import QueuedEvent
from flask_autotask_ilert.lifecycle import Priority, PriorityMap

NO_DETAILS = "Autotask's API did not give the ticket's details; this alert was built from the callout alone."


def queued(action: str, ticket: int = 4711, **more: Any) -> QueuedEvent:
    event: dict[str, Any] = {"id": "e1", "target": "ilert", "action": action, "source": "default",
                             "ticket": ticket, "queued_at": 1_790_000_000_000, "attempts": 0, **more}
    return event  # type: ignore[return-value]


CALLOUT = {"number": "T20261130.0007", "status": "New", "domain": "msp.example"}
TICKET = {"id": 4711, "ticketNumber": "T20261130.0042", "title": "Backup job failed",
          "description": "The nightly backup of FS01 failed.", "queueID": 8, "companyID": 29683}


# -- alert keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("generation", "key"), [
    (0, "autotask-4711"), (1, "autotask-4711"), (2, "autotask-4711-2"), (3, "autotask-4711-3"),
])
def test_the_alert_key_names_the_generation_from_the_second_on(generation: int, key: str) -> None:
    assert alert_key(4711, generation) == key


def test_the_alert_key_of_a_ticket_is_its_first_generations() -> None:
    assert alert_key(4711) == "autotask-4711"


# -- the kept summary -----------------------------------------------------------------------------


def test_a_summary_of_64_bytes_is_kept_whole() -> None:
    summary = "[T20261130.0042] " + "x" * 47
    assert len(summary.encode()) == 64
    assert kept_summary(summary) == summary


def test_a_longer_summary_keeps_61_bytes_and_an_ellipsis() -> None:
    summary = " [T20261130.0042] " + "y" * 47  # 65 bytes, leading blank kept
    assert kept_summary(summary) == " [T20261130.0042] " + "y" * 43 + "\u2026"


def test_the_kept_summary_drops_the_blanks_before_its_ellipsis() -> None:
    summary = "a" * 59 + "  b" + "c" * 10  # the cut at 61 bytes ends in two blanks
    assert kept_summary(summary) == "a" * 59 + "\u2026"


def test_the_kept_summary_never_splits_a_character() -> None:
    summary = "\u00e9" * 40  # 80 bytes; 61 bytes end half-way through the 31st
    assert kept_summary(summary) == "\u00e9" * 30 + "\u2026"


# -- the fallback summary -------------------------------------------------------------------------


def test_the_fallback_summary_names_the_callouts_ticket_number() -> None:
    event = queued("accept", callout={"number": "T20261130.0007"})
    assert fallback_summary(event) == "[T20261130.0007] Autotask ticket 4711"


def test_without_a_number_the_fallback_summary_uses_the_ticket_id() -> None:
    no_number = queued("resolve", callout={"status": "Complete"})
    assert fallback_summary(no_number) == "[#4711] Autotask ticket 4711"
    assert fallback_summary(queued("resolve")) == "[#4711] Autotask ticket 4711"


def test_the_fallback_summary_folds_blanks_and_stops_at_255_characters() -> None:
    event = queued("accept", callout={"number": "T 1\n\n2\t 3"})
    assert fallback_summary(event) == "[T 1 2 3] Autotask ticket 4711"
    long = queued("accept", callout={"number": "N" * 300})
    assert fallback_summary(long) == "[" + "N" * 253 + "\u2026"


# -- ACCEPT and RESOLVE ---------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "event_type"), [("accept", "ACCEPT"), ("resolve", "RESOLVE")])
def test_accept_and_resolve_carry_the_key_and_the_kept_summary_only(action: str, event_type: str) -> None:
    event = queued(action, alert_key="autotask-4711-2", callout=CALLOUT)
    body = build_event(event, PriorityMap(), TicketFacts(ticket=TICKET, url="https://x"),
                       summary="[T20261130.0042] Backup job failed")
    assert body == {"eventType": event_type, "alertKey": "autotask-4711-2",
                    "summary": "[T20261130.0042] Backup job failed"}


def test_an_accept_without_a_kept_summary_says_the_ticket_number() -> None:
    body = build_event(queued("accept", callout=CALLOUT), PriorityMap())
    assert body == {"eventType": "ACCEPT", "alertKey": "autotask-4711",
                    "summary": "[T20261130.0007] Autotask ticket 4711"}
    blank = build_event(queued("resolve"), PriorityMap(), summary="")
    assert blank["summary"] == "[#4711] Autotask ticket 4711"


def test_a_long_kept_summary_is_cut_at_255_characters() -> None:
    body = build_event(queued("resolve"), PriorityMap(), summary="s" * 256)
    assert body["summary"] == "s" * 254 + "\u2026"
    assert build_event(queued("resolve"), PriorityMap(), summary="s" * 255)["summary"] == "s" * 255


# -- ALERT ----------------------------------------------------------------------------------------


def test_an_alert_from_the_ticket_has_every_field() -> None:
    event = queued("create", callout=CALLOUT)
    facts = TicketFacts(ticket=TICKET, priority_label="Medium", queue_label="Monitoring Alert",
                        url="https://ww5.autotask.net/Autotask/AutotaskExtend/ExecuteCommand.aspx?Code=OpenTicketDetail&TicketID=4711")
    body = build_event(event, PriorityMap({"Medium": "LOW"}), facts)
    assert body == {
        "eventType": "ALERT",
        "alertKey": "autotask-4711",
        "summary": "[T20261130.0042] Backup job failed",
        "priority": "LOW",
        "customDetails": {
            "ticketId": 4711,
            "ticketNumber": "T20261130.0042",
            "status": "New",
            "priority": "Medium",
            "queue": "Monitoring Alert",
            "companyId": 29683,
            "domain": "msp.example",
        },
        "details": "The nightly backup of FS01 failed.",
        "links": [{"href": "https://ww5.autotask.net/Autotask/AutotaskExtend/ExecuteCommand.aspx"
                           "?Code=OpenTicketDetail&TicketID=4711",
                   "text": "Autotask ticket T20261130.0042"}],
    }


def test_an_alert_from_the_callout_alone_says_so() -> None:
    body = build_event(queued("create", alert_key="autotask-4711-3", callout=CALLOUT), PriorityMap())
    assert body == {
        "eventType": "ALERT",
        "alertKey": "autotask-4711-3",
        "summary": "[T20261130.0007] Autotask ticket 4711 (New)",
        "priority": "HIGH",
        "customDetails": {"ticketId": 4711, "ticketNumber": "T20261130.0007", "status": "New",
                          "priority": None, "queue": None, "companyId": None, "domain": "msp.example"},
        "details": NO_DETAILS,
    }


def test_an_alert_without_callout_or_ticket_names_the_ticket_id() -> None:
    body = build_event(queued("create"), PriorityMap(), TicketFacts())
    assert body == {
        "eventType": "ALERT",
        "alertKey": "autotask-4711",
        "summary": "[#4711] Autotask ticket 4711",  # no callout, so no status to name
        "priority": "HIGH",
        "customDetails": {"ticketId": 4711, "ticketNumber": "#4711", "status": None,
                          "priority": None, "queue": None, "companyId": None, "domain": None},
        "details": NO_DETAILS,
    }


def test_a_ticket_without_a_description_or_title_gets_no_details() -> None:
    ticket = {"id": 4711, "queueID": 8, "companyID": 0, "description": ""}
    body = build_event(queued("create", callout=CALLOUT), PriorityMap(), TicketFacts(ticket=ticket,
                                                                                      priority_label="High"))
    assert body == {
        "eventType": "ALERT",
        "alertKey": "autotask-4711",
        "summary": "[T20261130.0007] Autotask ticket 4711 (New)",
        "priority": "HIGH",
        "customDetails": {"ticketId": 4711, "ticketNumber": "T20261130.0007", "status": "New",
                          "priority": "High", "queue": 8, "companyId": 0, "domain": "msp.example"},
    }


def test_the_alert_summary_folds_blanks_and_stops_at_255_characters() -> None:
    ticket = {"ticketNumber": "T1", "title": "  Disk\n\tfull  on   FS01 "}
    body = build_event(queued("create"), PriorityMap(), TicketFacts(ticket=ticket))
    assert body["summary"] == "[T1] Disk full on FS01"
    long_title = TicketFacts(ticket={"ticketNumber": "T1", "title": "t" * 300})
    long = build_event(queued("create"), PriorityMap(), long_title)
    assert long["summary"] == "[T1] " + "t" * 249 + "\u2026"


def test_the_details_stop_at_20000_characters() -> None:
    def details(text: str) -> Any:
        ticket = {"ticketNumber": "T1", "title": "x", "description": text}
        return build_event(queued("create"), PriorityMap(), TicketFacts(ticket=ticket))["details"]

    assert details("d" * 20_000) == "d" * 20_000
    assert details("d" * 20_001) == "d" * 19_999 + "\u2026"
    assert details("  keeps\n\n its  blanks ") == "  keeps\n\n its  blanks "


def test_an_events_priority_follows_the_label() -> None:
    priorities = PriorityMap({"Critical": Priority.HIGH, "Low": Priority.LOW})
    low = build_event(queued("create"), priorities, TicketFacts(priority_label="low"))
    critical = build_event(queued("create"), priorities, TicketFacts(priority_label="Critical"))
    assert low["priority"] == "LOW" and critical["priority"] == "HIGH"


# -- custom text ------------------------------------------------------------------------------------


def default_body() -> dict[str, Any]:
    return build_event(queued("create", callout=CALLOUT), PriorityMap(),
                       TicketFacts(ticket=TICKET, priority_label="Medium"))


def test_custom_text_replaces_the_default() -> None:
    body = apply_text(default_body(), summary=" Contoso:\n backup   failed ", details="  Jane\n\nDoe ",
                      custom_details={"phone": "+49 30 1234", "status": "Escalated"}, priority="LOW")
    assert body == {
        "eventType": "ALERT",
        "alertKey": "autotask-4711",
        "summary": "Contoso: backup failed",
        "priority": "LOW",
        "customDetails": {"ticketId": 4711, "ticketNumber": "T20261130.0042", "status": "Escalated",
                          "priority": "Medium", "queue": 8, "companyId": 29683, "domain": "msp.example",
                          "phone": "+49 30 1234"},
        "details": "  Jane\n\nDoe ",
    }


@pytest.mark.parametrize("blank", [None, "", "  \n\t"])
def test_blank_or_missing_custom_text_keeps_the_default(blank: str | None) -> None:
    assert apply_text(default_body(), summary=blank, details=blank, custom_details={}) == default_body()


def test_custom_text_stops_at_the_limits() -> None:
    body = apply_text(default_body(), summary="s" * 256, details="d" * 20_001)
    assert body["summary"] == "s" * 254 + "\u2026"
    assert body["details"] == "d" * 19_999 + "\u2026"
    kept = apply_text(default_body(), summary="s" * 255, details="d" * 20_000)
    assert kept["summary"] == "s" * 255 and kept["details"] == "d" * 20_000


def test_custom_details_go_into_a_body_that_had_none() -> None:
    assert apply_text({"eventType": "ALERT"}, custom_details={"site": "Berlin"}) == {
        "eventType": "ALERT", "customDetails": {"site": "Berlin"}}
