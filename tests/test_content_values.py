"""What an ALERT says and where it goes (content.py), with every expected value written out.

In-process and without HTTP: Autotask is a small stand-in that answers the few
calls content.py makes (picklists, the ticket, its company) and records them,
and the entity reader is a stand-in that records which entities were asked for.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from prometheus_client import REGISTRY

from flask_autotask_ilert.alerts import TicketFacts
from flask_autotask_ilert.autotask import AutotaskError
from flask_autotask_ilert.config import PREFIX, SourceConfig, load_settings
from flask_autotask_ilert.content import activity_time, compose, explain, ticket_context, ticket_labels
from flask_autotask_ilert.events import QueuedEvent
from flask_autotask_ilert.routing import parse_routes
from flask_autotask_ilert.templates import build

SOURCE_KEY = "il1api-source-own-key-000111"
KEY_A = "il1api-rule-a-key-222333"
KEY_B = "il1api-rule-b-key-444555"
TOKEN = "callout-token-0123456789abcdef"
NO_LABELS = {"status": None, "priority": None, "queue": None, "issueType": None,
             "subIssueType": None, "source": None, "ticketType": None}
PICKLISTS: dict[str, dict[str, str]] = {
    "status": {"1": "New", "5": "Complete"},
    "priority": {"1": "High", "4": "Critical"},
    "queueID": {"8": "Monitoring Alert"},
    "issueType": {"0": "Hardware", "12": "Software"},
    "subIssueType": {"140": "Backup Failure"},
    "source": {"2": "Monitoring Alert"},
    "ticketType": {"5": "Alert"},
}
TICKET = {"id": 4711, "ticketNumber": "T20261130.0042", "title": "Backup job failed",
          "status": 1, "priority": 4, "queueID": 8, "issueType": 12, "subIssueType": 140,
          "source": 2, "ticketType": 5, "companyID": 29683, "contactID": 30, "assignedResourceID": 31}
LABELS = {"status": "New", "priority": "Critical", "queue": "Monitoring Alert", "issueType": "Software",
          "subIssueType": "Backup Failure", "source": "Monitoring Alert", "ticketType": "Alert"}
URL = "https://ww5.autotask.net/Autotask/AutotaskExtend/ExecuteCommand.aspx?Code=OpenTicketDetail&TicketID=4711"
CALLOUT = {"number": "T20261130.0042", "status": "New", "domain": "msp.example",
           "last_activity": "2026-11-30T09:15:00"}


class FakeAutotask:
    """Answers picklist, get_ticket and get_company from dicts; records every call."""

    def __init__(self, ticket: dict[str, Any] | None = None, companies: Mapping[int, dict[str, Any]] = {},
                 error: AutotaskError | None = None) -> None:
        self.ticket, self.companies, self.error = ticket, companies, error
        self.calls: list[tuple[Any, ...]] = []

    def picklist(self, entity: str, field: str) -> dict[str, str]:
        self.calls.append(("picklist", entity, field))
        return PICKLISTS[field]

    def get_ticket(self, ticket_id: int) -> dict[str, Any] | None:
        self.calls.append(("get_ticket", ticket_id))
        if self.error is not None:
            raise self.error
        return self.ticket

    def get_company(self, company_id: int) -> dict[str, Any] | None:
        self.calls.append(("get_company", company_id))
        return self.companies.get(company_id)


class FakeReader:
    """An EntityReader that answers from a dict and records what it was asked."""

    def __init__(self, entities: Mapping[str, Any]) -> None:
        self.entities = entities
        self.asked: list[tuple[list[str], Any]] = []

    def read(self, names: Iterable[str], ticket: Mapping[str, Any]) -> dict[str, Any]:
        wanted = sorted(names)
        self.asked.append((wanted, dict(ticket)))
        return {name: self.entities.get(name) for name in wanted}


ENTITIES = {"company": {"companyName": "Contoso Ltd"}, "contact": {"lastName": "Doe"},
            "resource": {"email": "sam@msp.test"}}


def source(routes: list[dict[str, Any]] | None = None, **text: Any) -> SourceConfig:
    settings = load_settings({f"{PREFIX}CALLOUT_TOKEN": TOKEN,
                              f"{PREFIX}ILERT_INTEGRATION_KEY": SOURCE_KEY}, {})
    base = settings.sources["default"]
    templates = build(text.get("summary_template"), text.get("details_template"), text.get("custom_details"))
    return dataclasses.replace(base, templates=templates, routes=parse_routes(routes, text))


def queued(**more: Any) -> QueuedEvent:
    event: dict[str, Any] = {"id": "e1", "target": "ilert", "action": "create", "source": "default",
                             "ticket": 4711, "queued_at": 1_796_025_600_000, "attempts": 0, **more}
    return event  # type: ignore[return-value]


def errors_counted(template: str) -> float:
    value = REGISTRY.get_sample_value("autotask_ilert_template_errors_total",
                                      {"source": "default", "template": template})
    return value or 0.0


# -- ticket_labels ----------------------------------------------------------------------------------


def test_without_a_client_or_a_ticket_every_label_is_none() -> None:
    client = FakeAutotask()
    assert ticket_labels(None, TICKET) == NO_LABELS
    assert ticket_labels(client, None) == NO_LABELS  # type: ignore[arg-type]
    assert ticket_labels(client, {}) == NO_LABELS  # type: ignore[arg-type]
    assert client.calls == []


def test_the_labels_come_from_the_tickets_picklists() -> None:
    client = FakeAutotask()
    assert ticket_labels(client, TICKET) == LABELS  # type: ignore[arg-type]
    assert client.calls == [("picklist", "Tickets", "status"), ("picklist", "Tickets", "priority"),
                            ("picklist", "Tickets", "queueID"), ("picklist", "Tickets", "issueType"),
                            ("picklist", "Tickets", "subIssueType"), ("picklist", "Tickets", "source"),
                            ("picklist", "Tickets", "ticketType")]


def test_a_field_the_ticket_lacks_is_not_looked_up_and_an_unknown_value_has_no_label() -> None:
    client = FakeAutotask()
    ticket = {"id": 4711, "status": 5, "priority": 99, "issueType": 0, "queueID": None}
    assert ticket_labels(client, ticket) == {**NO_LABELS, "status": "Complete", "issueType": "Hardware"}  # type: ignore[arg-type]
    assert client.calls == [("picklist", "Tickets", "status"), ("picklist", "Tickets", "priority"),
                            ("picklist", "Tickets", "issueType")]


# -- ticket_context ---------------------------------------------------------------------------------


def test_templates_see_the_callout_when_autotask_gave_no_ticket() -> None:
    facts = TicketFacts(url=URL)
    assert ticket_context(queued(callout=CALLOUT), facts, {**NO_LABELS, "queue": "Monitoring Alert"}) == {
        "id": 4711, "ticketNumber": "T20261130.0042", "status": "New", "queue": "Monitoring Alert",
        "url": URL}
    assert ticket_context(queued(), TicketFacts(), NO_LABELS) == {
        "id": 4711, "ticketNumber": None, "status": None, "queue": None, "url": None}


def test_templates_see_the_tickets_fields_with_labels_for_picklist_values() -> None:
    facts = TicketFacts(ticket=TICKET, url=URL)
    assert ticket_context(queued(callout=CALLOUT), facts, LABELS) == {
        "id": 4711, "ticketNumber": "T20261130.0042", "title": "Backup job failed",
        "status": "New", "priority": "Critical", "queueID": 8, "issueType": "Software",
        "subIssueType": "Backup Failure", "source": "Monitoring Alert", "ticketType": "Alert",
        "companyID": 29683, "contactID": 30, "assignedResourceID": 31,
        "queue": "Monitoring Alert", "url": URL,
    }
    assert TICKET["status"] == 1  # the ticket itself is left as Autotask gave it


def test_a_value_without_a_label_stays_the_number() -> None:
    facts = TicketFacts(ticket={"id": 4711, "status": 7, "priority": 4})
    assert ticket_context(queued(), facts, {**NO_LABELS, "priority": "Critical"}) == {
        "id": 4711, "status": 7, "priority": "Critical", "queue": None, "url": None}


# -- activity_time ----------------------------------------------------------------------------------


def test_the_activity_time_is_the_callouts_in_utc_when_it_names_no_zone() -> None:
    when = activity_time(queued(callout={"last_activity": "2026-11-30T09:15:00"}))
    assert when == datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)
    assert when.utcoffset() == timedelta(0)


def test_the_activity_time_keeps_the_callouts_offset() -> None:
    when = activity_time(queued(callout={"last_activity": "2026-11-30T10:15:00+01:00"}))
    assert when.utcoffset() == timedelta(hours=1)
    assert when == datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize("callout", [None, {}, {"last_activity": "yesterday"}, {"last_activity": 1796025600}])
def test_without_a_readable_activity_time_it_is_when_the_event_was_queued(callout: Any) -> None:
    event = queued(queued_at=1_796_025_600_123) if callout is None else queued(callout=callout,
                                                                               queued_at=1_796_025_600_123)
    when = activity_time(event)
    assert when == datetime(2026, 11, 30, 8, 0, 0, 123_000, tzinfo=timezone.utc)
    assert when.utcoffset() == timedelta(0)


# -- compose ----------------------------------------------------------------------------------------


DEFAULT_BODY = {
    "eventType": "ALERT", "alertKey": "autotask-4711", "summary": "[T20261130.0042] Backup job failed",
    "priority": "HIGH",
    "customDetails": {"ticketId": 4711, "ticketNumber": "T20261130.0042", "status": "New",
                      "priority": "Critical", "queue": "Monitoring Alert", "companyId": 29683,
                      "domain": "msp.example"},
    "links": [{"href": URL, "text": "Autotask ticket T20261130.0042"}],
}
FACTS = TicketFacts(ticket=TICKET, priority_label="Critical", queue_label="Monitoring Alert", url=URL)


def test_without_rules_or_templates_the_default_text_goes_to_the_sources_key() -> None:
    reader = FakeReader(ENTITIES)
    alert = compose(source(), queued(callout=CALLOUT), FACTS, LABELS, reader)  # type: ignore[arg-type]
    assert alert.body == DEFAULT_BODY
    assert alert.route is None and alert.integration_key == SOURCE_KEY
    assert reader.asked == []


def test_a_rule_on_the_company_reads_it_once_and_its_key_and_priority_win() -> None:
    config = source([{"match": {"company": "Contoso Ltd"}, "integration_key": KEY_A, "priority": "LOW",
                      "name": "contoso"},
                     {"integration_key": KEY_B}])
    reader = FakeReader(ENTITIES)
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, reader)  # type: ignore[arg-type]
    assert alert.body == {**DEFAULT_BODY, "priority": "LOW"}
    assert alert.route is config.routes[0] and alert.integration_key == KEY_A
    assert reader.asked == [(["company"], TICKET)]


def test_a_rule_without_a_priority_keeps_the_tickets() -> None:
    config = source([{"match": {"queue": "monitoring alert"}, "integration_key": KEY_B}])
    reader = FakeReader(ENTITIES)
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, reader)  # type: ignore[arg-type]
    assert alert.body == DEFAULT_BODY
    assert alert.route is config.routes[0] and alert.integration_key == KEY_B
    assert reader.asked == []  # no rule matches on the company: nothing read


def test_without_a_reader_a_company_rule_cannot_match() -> None:
    config = source([{"match": {"company": "Contoso Ltd"}, "integration_key": KEY_A, "priority": "LOW"}])
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, None)
    assert alert.body == DEFAULT_BODY
    assert alert.route is None and alert.integration_key == SOURCE_KEY


def test_rules_match_at_the_callouts_activity_time() -> None:
    config = source([{"hours": {"inside": "Mon-Fri 08:00-18:00", "tz": "Europe/Berlin"},
                      "integration_key": KEY_A}])
    monday_morning = queued(callout={**CALLOUT, "last_activity": "2026-11-30T09:15:00"})  # 10:15 in Berlin
    monday_night = queued(callout={**CALLOUT, "last_activity": "2026-11-30T19:15:00"})  # 20:15 in Berlin
    assert compose(config, monday_morning, FACTS, LABELS, None).integration_key == KEY_A
    assert compose(config, monday_night, FACTS, LABELS, None).integration_key == SOURCE_KEY


SEES_ALL = ("{{ source }}|{{ callout.status }}|{{ ticket.queue }}|{{ ticket.priority }}|"
            "{{ company.companyName }}|{{ contact.lastName }}|{{ resource.email }}")


def test_the_sources_templates_see_the_ticket_its_entities_the_callout_and_the_source() -> None:
    config = source(summary_template=SEES_ALL,
                    details_template="Ticket {{ ticket.ticketNumber }}: {{ ticket.url }}",
                    custom_details={"who": "{{ contact.lastName }}"})
    reader = FakeReader(ENTITIES)
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, reader)  # type: ignore[arg-type]
    assert alert.body == {
        **DEFAULT_BODY,
        "summary": "default|New|Monitoring Alert|Critical|Contoso Ltd|Doe|sam@msp.test",
        "details": f"Ticket T20261130.0042: {URL}",
        "customDetails": {**DEFAULT_BODY["customDetails"], "who": "Doe"},  # type: ignore[dict-item]
    }
    assert alert.route is None and alert.integration_key == SOURCE_KEY
    assert reader.asked == [(["company", "contact", "resource"], TICKET)]


def test_the_templates_see_an_empty_callout_when_there_was_none() -> None:
    config = source(summary_template="[{{ callout }}] {{ ticket.title }}")
    alert = compose(config, queued(), FACTS, LABELS, None)
    assert alert.body["summary"] == "[{}] Backup job failed"


def test_an_entity_already_read_for_the_rules_is_not_read_again() -> None:
    config = source([{"match": {"company": "Fabrikam"}, "integration_key": KEY_A}],
                    summary_template="{{ company.companyName }} / {{ contact.lastName }}")
    reader = FakeReader(ENTITIES)
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, reader)  # type: ignore[arg-type]
    assert alert.body["summary"] == "Contoso Ltd / Doe"
    assert alert.route is None
    assert reader.asked == [(["company"], TICKET), (["contact"], TICKET)]


def test_without_a_reader_the_entities_render_blank() -> None:
    config = source(summary_template="[{{ company.companyName }}] {{ ticket.title }}")
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, None)
    assert alert.body["summary"] == "[] Backup job failed"


def test_a_rules_own_templates_replace_the_sources_and_a_rule_without_keeps_them() -> None:
    config = source([{"match": {"priority": "Critical"}, "integration_key": KEY_A,
                      "summary_template": "NOC: {{ ticket.title }}"},
                     {"integration_key": KEY_B}],
                    summary_template="Desk: {{ ticket.title }}")
    critical = compose(config, queued(callout=CALLOUT), FACTS, LABELS, None)
    assert critical.body["summary"] == "NOC: Backup job failed" and critical.integration_key == KEY_A
    other = compose(config, queued(callout=CALLOUT), FACTS, {**LABELS, "priority": "High"}, None)
    assert other.body["summary"] == "Desk: Backup job failed" and other.integration_key == KEY_B


def test_a_rules_priority_applies_to_templated_text_too() -> None:
    config = source([{"integration_key": KEY_A, "priority": "low"}], summary_template="{{ ticket.title }}")
    alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, None)
    assert alert.body == {**DEFAULT_BODY, "summary": "Backup job failed", "priority": "LOW"}


def test_a_failing_template_is_logged_counted_and_replaced_by_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = source(summary_template="{{ ticket.title.__class__ }}", details_template="{{ ticket.id / 0 }}")
    before = errors_counted("summary"), errors_counted("details")
    with caplog.at_level(logging.WARNING, logger="flask_autotask_ilert"):
        alert = compose(config, queued(callout=CALLOUT), FACTS, LABELS, None)
    assert alert.body == DEFAULT_BODY
    assert errors_counted("summary") == before[0] + 1
    assert errors_counted("details") == before[1] + 1
    assert [r.getMessage() for r in caplog.records] == [
        "source default, ticket 4711: the summary template failed (SecurityError: access to attribute "
        "'__class__' of a 'str' object is unsafe); the default text goes out",
        "source default, ticket 4711: the details template failed (ZeroDivisionError: division by zero); "
        "the default text goes out",
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]


def test_a_failing_templates_error_is_logged_without_the_sources_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = source(details_template="{{ ticket.id / 0 }}")
    secret = dataclasses.replace(config, ilert_integration_key="division by zero")  # a secret the error shows
    with caplog.at_level(logging.WARNING, logger="flask_autotask_ilert"):
        compose(secret, queued(callout=CALLOUT), FACTS, LABELS, None)
    assert [r.getMessage() for r in caplog.records] == [
        "source default, ticket 4711: the details template failed (ZeroDivisionError: ***); "
        "the default text goes out"]


# -- explain ----------------------------------------------------------------------------------------


RULES = [{"match": {"priority": "Critical", "company": "Contoso Ltd"}, "integration_key": KEY_A,
          "name": "noc"},
         {"match": {"queue": "Monitoring Alert"}, "integration_key": KEY_B}]
WHEN = datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)


def test_explain_names_the_rule_the_ticket_meets_reading_ticket_and_company() -> None:
    client = FakeAutotask(TICKET, {29683: {"companyName": "Contoso Ltd"}})
    assert explain(source(RULES), client, 4711, WHEN) == "route: ticket 4711 meets rule 0 (noc)"  # type: ignore[arg-type]
    assert client.calls[0] == ("get_ticket", 4711)
    assert client.calls[-1] == ("get_company", 29683)
    assert len(client.calls) == 9


def test_explain_without_a_company_name_falls_to_the_next_rule() -> None:
    client = FakeAutotask(TICKET, {})
    assert explain(source(RULES), client, 4711, WHEN) == "route: ticket 4711 meets rule 1"  # type: ignore[arg-type]
    no_company = FakeAutotask({**TICKET, "companyID": None}, {29683: {"companyName": "Contoso Ltd"}})
    assert explain(source(RULES), no_company, 4711, WHEN) == "route: ticket 4711 meets rule 1"  # type: ignore[arg-type]
    assert ("get_company", 29683) not in no_company.calls


def test_explain_reads_no_company_when_no_rule_matches_on_it() -> None:
    client = FakeAutotask(TICKET, {29683: {"companyName": "Contoso Ltd"}})
    rules = [{"match": {"priority": "Critical"}, "integration_key": KEY_A}]
    assert explain(source(rules), client, 4711, WHEN) == "route: ticket 4711 meets rule 0"  # type: ignore[arg-type]
    assert [call[0] for call in client.calls] == ["get_ticket"] + ["picklist"] * 7


def test_explain_a_ticket_autotask_does_not_have() -> None:
    assert explain(source(RULES), FakeAutotask(None), 4711, WHEN) == (  # type: ignore[arg-type]
        "route: no rule matches ticket 4711; its alert goes to the source's own key "
        "(the ticket is not in Autotask: matched without labels)")
    assert explain(source(RULES), None, 4711, WHEN) == (
        "route: no rule matches ticket 4711; its alert goes to the source's own key "
        "(the ticket is not in Autotask: matched without labels)")
    catch_all = [{"integration_key": KEY_B, "name": "rest"}]
    assert explain(source(catch_all), None, 4711, WHEN) == (
        "route: ticket 4711 meets rule 0 (rest) (the ticket is not in Autotask: matched without labels)")


def test_explain_when_autotask_fails() -> None:
    error = AutotaskError("GET Tickets/4711 failed: HTTP 503", retryable=True, status=503)
    client = FakeAutotask(error=error)
    assert explain(source(RULES), client, 4711, WHEN) == (  # type: ignore[arg-type]
        "route: no rule matches ticket 4711; its alert goes to the source's own key "
        "(Autotask: GET Tickets/4711 failed: HTTP 503; matched without labels)")


class CompanyFails(FakeAutotask):
    def get_company(self, company_id: int) -> dict[str, Any] | None:
        self.calls.append(("get_company", company_id))
        raise AutotaskError("GET Companies/29683 failed: HTTP 503", retryable=True, status=503)


def test_explain_when_only_the_company_read_fails_keeps_the_ticket_labels() -> None:
    rules = [{"match": {"company": "Contoso Ltd"}, "integration_key": KEY_A, "name": "contoso"},
             {"match": {"priority": "Critical"}, "integration_key": KEY_B, "name": "crit"}]
    assert explain(source(rules), CompanyFails(TICKET), 4711, WHEN) == (  # type: ignore[arg-type]
        "route: ticket 4711 meets rule 1 (crit) "
        "(Autotask: GET Companies/29683 failed: HTTP 503; matched without the company's name)")


def test_explain_without_a_note_when_the_ticket_was_read() -> None:
    client = FakeAutotask({"id": 4711, "priority": 1})
    assert explain(source(RULES), client, 4711, WHEN) == (  # type: ignore[arg-type]
        "route: no rule matches ticket 4711; its alert goes to the source's own key")


def test_explain_matches_the_hours_at_the_time_it_is_given() -> None:
    rules = [{"hours": {"inside": "Mon-Fri 08:00-18:00", "tz": "Europe/Berlin"}, "integration_key": KEY_A,
              "name": "office"}]
    client = FakeAutotask({"id": 4711, "priority": 1})
    assert explain(source(rules), client, 4711, WHEN) == "route: ticket 4711 meets rule 0 (office)"  # type: ignore[arg-type]
    evening = datetime(2026, 11, 30, 19, 15, tzinfo=timezone.utc)  # 20:15 in Berlin
    assert explain(source(rules), client, 4711, evening) == (  # type: ignore[arg-type]
        "route: no rule matches ticket 4711; its alert goes to the source's own key")
