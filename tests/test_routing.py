"""Routing: first match wins, labels compared loosely, hours in a time zone, the ALERT's key kept."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

from flask_autotask_ilert.errors import ConfigurationError
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.http import secret_digest
from flask_autotask_ilert.routing import choose, parse_hours, parse_routes

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, drain
from .tenant import KEY_A, KEY_B, Tenant, callout

SECRETS = (TOKEN, INTEGRATION_KEY, KEY_A, KEY_B)
BERLIN_OFFICE = {"outside": "Mon-Fri 08:00-18:00", "tz": "Europe/Berlin",
                 "holidays": ["2026-12-25", "2026-12-26"]}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def sent_to(tenant: Tenant, ticket: int) -> list[tuple[str, str]]:
    """(event type, integration key) of each event ilert accepted for the ticket, in order."""
    ours = re.compile(rf"autotask-{ticket}(-\d+)?")  # the ticket's first alert, or a reopen's
    return [(e.body["eventType"], e.body["integrationKey"]) for e in tenant.ilert.events()
            if ours.fullmatch(str(e.body.get("alertKey"))) and e.accepted]


# -- hours, with literal instants ---------------------------------------------------------------


@pytest.mark.parametrize(("instant", "inside"), [
    ("2026-03-27T07:30:00", True),   # Fri 08:30 CET (UTC+1)
    ("2026-03-27T06:30:00", False),  # Fri 07:30 CET
    ("2026-03-30T06:30:00", True),   # Mon after the spring change: 08:30 CEST (UTC+2); CET would say 07:30
    ("2026-03-30T16:30:00", False),  # Mon 18:30 CEST; CET would say 17:30, inside
    ("2026-03-29T10:00:00", False),  # Sunday, the day of the change
    ("2026-10-26T06:30:00", False),  # Mon after the autumn change: 07:30 CET; CEST would say 08:30
    ("2026-10-26T16:30:00", True),   # Mon 17:30 CET; CEST would say 18:30, outside
    ("2026-12-24T10:00:00", True),   # Thu 11:00 CET, a working day
    ("2026-12-25T10:00:00", False),  # Fri 11:00 CET, a holiday
    ("2026-12-24T23:30:00", False),  # Fri 00:30 CET, already the holiday in Berlin
    ("2026-12-28T07:00:00", True),   # Mon 08:00 CET: the start is inside
    ("2026-12-28T17:00:00", False),  # Mon 18:00 CET: the end is not
])
def test_business_hours_follow_the_zone_across_daylight_saving_and_holidays(
    instant: str, inside: bool
) -> None:
    hours = parse_hours(BERLIN_OFFICE)
    assert hours.within(utc(instant)) is inside
    assert hours.matches(utc(instant)) is not inside  # an "outside" rule


def test_hours_spans_days_and_inside() -> None:
    hours = parse_hours({"inside": "Sat-Sun 00:00-24:00; Mon,Wed 12:00-13:00", "tz": "America/New_York"})
    assert hours.matches(utc("2026-07-04T15:00:00"))  # Saturday
    assert hours.matches(utc("2026-07-06T16:30:00"))  # Mon 12:30 EDT
    assert not hours.matches(utc("2026-07-07T16:30:00"))  # Tuesday
    assert not hours.matches(utc("2026-07-06T12:30:00"))  # Mon 08:30 EDT


# -- the rules ----------------------------------------------------------------------------------


def test_first_match_wins_and_labels_compare_loosely() -> None:
    routes = parse_routes([
        {"match": {"queue": ["Monitoring Alert"], "priority": ["Critical", "High"]},
         "integration_key": KEY_A, "priority": "high"},
        {"match": {"queue": "monitoring   ALERT"}, "integration_key": KEY_B},
        {"match": {"company": ["Contoso Ltd"]}, "integration_key": KEY_B, "name": "contoso"},
    ])
    now = utc("2026-11-30T10:00:00")
    assert choose(routes, {"queue": "MONITORING alert", "priority": "critical"}, now) is routes[0]
    assert choose(routes, {"queue": "Monitoring Alert", "priority": "Low"}, now) is routes[1]
    assert choose(routes, {"queue": "Service Desk", "company": "contoso ltd"}, now) is routes[2]
    assert choose(routes, {"queue": "Service Desk", "company": None}, now) is None
    assert routes[0].priority is not None and routes[0].priority.value == "HIGH"
    assert routes[2].label == "rule 2 (contoso)"
    assert KEY_A not in repr(routes[0])


@pytest.mark.parametrize(("rules", "says"), [
    ({"match": {}}, "ROUTES must be a list of rules"),
    ([{"integration_key": KEY_A}, {"match": {"queue": ["x"]}}], "ROUTES rule 1: needs an integration_key"),
    ([{"integration_key": KEY_A, "match": {"queu": ["x"]}}], "rule 0: match has unknown field(s) queu"),
    ([{"integration_key": KEY_A, "match": {"queue": []}}], "rule 0: match.queue must be a label"),
    ([{"integration_key": KEY_A, "match": {"queue": [3]}}], "rule 0: match.queue must be a label"),
    ([{"integration_key": KEY_A, "priority": "URGENT"}], "rule 0: priority must be 'HIGH' or 'LOW'"),
    ([{"integration_key": KEY_A, "keys": 1}], "rule 0: unknown key(s) keys"),
    ([{"integration_key": KEY_A, "hours": {"outside": "Mon-Fri 8-18"}}], "rule 0: hours: 'Mon-Fri 8-18'"),
    ([{"integration_key": KEY_A, "hours": {"outside": "Mon-Fri 18:00-08:00"}}], "ends before it starts"),
    ([{"integration_key": KEY_A, "hours": {"inside": "Mon 08:00-09:00", "outside": "Tue 08:00-09:00"}}],
     "exactly one of 'inside' and 'outside'"),
    ([{"integration_key": KEY_A, "hours": {"outside": "Mon-Fri 08:00-18:00", "tz": "Mars/Olympus"}}],
     "unknown time zone 'Mars/Olympus'"),
    ([{"integration_key": KEY_A, "hours": {"outside": "Mon-Fri 08:00-18:00", "holidays": ["25.12."]}}],
     "holidays must be dates written YYYY-MM-DD"),
    ([{"integration_key": KEY_A, "hours": {"outside": "Mon-Fry 08:00-18:00"}}], "'Mon-Fry': days are"),
    ([{"integration_key": KEY_A, "summary_template": "{{ tickt.title }}"}],
     "rule 0: SUMMARY_TEMPLATE uses unknown name(s) tickt"),
    (["queue"], "rule 0: must be a mapping"),
])
def test_a_bad_rule_stops_the_app_naming_its_index_and_never_the_key(
    make_app: AppFactory, rules: Any, says: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        make_app(routes=rules)
    assert says in str(error.value)
    assert "source 'default'" in str(error.value)
    assert KEY_A not in str(error.value)


# -- through the worker, against the simulators ---------------------------------------------------


def routed_app(make_app: AppFactory, tenant: Tenant, routes: list[dict[str, Any]], **more: Any) -> Any:
    return make_app(**tenant.config(routes=routes, **more))


def test_tickets_go_to_the_first_matching_rule_or_the_sources_key(
    make_app: AppFactory, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    contoso = tenant.autotask.add_company("Contoso Ltd")
    app = routed_app(make_app, tenant, [
        {"match": {"queue": ["monitoring alert"], "priority": ["CRITICAL", "high"]},
         "integration_key": KEY_A, "priority": "LOW",
         "summary_template": "NOC: {{ ticket.title }}"},
        {"match": {"company": "contoso ltd"}, "integration_key": KEY_B},
        {"match": {"issueType": "Network", "subIssueType": ["Internet Outage"]},
         "integration_key": KEY_B},
    ])
    service_desk = tenant.autotask.picklist_value("queueID", "Service Desk")
    critical = tenant.ticket("Core switch down", "Critical")
    contoso_ticket = tenant.ticket("Printer jam", "Low", companyID=contoso["id"])
    outage = tenant.ticket("WAN down", "Medium", queueID=service_desk,
                           issueType=tenant.autotask.picklist_value("issueType", "Network"),
                           subIssueType=tenant.autotask.picklist_value("subIssueType", "Internet Outage"))
    other = tenant.ticket("Password reset", "Medium", queueID=service_desk)
    with caplog.at_level(logging.DEBUG, logger="flask_autotask_ilert"):
        for ticket in (critical, contoso_ticket, outage, other):
            assert callout(app, ticket) == 202
        drain(app)

    assert sent_to(tenant, critical) == [("ALERT", KEY_A)]
    alert = tenant.ilert.alert_for(f"autotask-{critical}", integration_key=KEY_A)
    assert alert is not None and alert.summary == "NOC: Core switch down" and alert.priority == "LOW"
    assert sent_to(tenant, contoso_ticket) == [("ALERT", KEY_B)]
    assert sent_to(tenant, outage) == [("ALERT", KEY_B)]
    assert sent_to(tenant, other) == [("ALERT", INTEGRATION_KEY)]
    # The rule's text replaced the summary only; the source's default for the rest.
    assert tenant.ilert.alert_for(f"autotask-{other}").summary.endswith("Password reset")  # type: ignore[union-attr]
    for secret in SECRETS:
        assert secret not in caplog.text


def test_accept_and_resolve_follow_the_alert_even_after_the_rules_change(
    make_app: AppFactory, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    rules = [{"match": {"priority": "Critical"}, "integration_key": KEY_A}]
    first = routed_app(make_app, tenant, rules, real_redis=True)
    ticket = tenant.ticket("Core switch down", "Critical")
    moved = tenant.ticket("Storage degraded", "Critical")
    for each in (ticket, moved):
        assert callout(first, each) == 202
    drain(first)
    store = redis.Redis.from_url(get_bridge(first).settings.redis_url or "")
    record = store.hgetall(get_bridge(first).store.keys.mapping("default", ticket))
    assert record[b"rk"] == secret_digest(KEY_A).encode() and record[b"s"].startswith(b"PENDING|")
    assert KEY_A.encode() not in b"".join(record.values())

    # The rules change: critical tickets now page B. The open alerts stay where they are.
    second = routed_app(make_app, tenant, [{"match": {"priority": "Critical"}, "integration_key": KEY_B},
                                           {"match": {"queue": "Nowhere"}, "integration_key": KEY_A}],
                        real_redis=True)
    assert callout(second, ticket, "In Progress") == 202
    assert callout(second, ticket, "Complete") == 202
    drain(second)
    assert sent_to(tenant, ticket) == [("ALERT", KEY_A), ("ACCEPT", KEY_A), ("RESOLVE", KEY_A)]
    alert = tenant.ilert.alert_for(f"autotask-{ticket}", integration_key=KEY_A)
    assert alert is not None and alert.status == "RESOLVED"

    # A key no longer configured at all: the source's own key, rather than nowhere.
    third = routed_app(make_app, tenant, [{"match": {"queue": "Nowhere"}, "integration_key": KEY_B}],
                       real_redis=True)
    with caplog.at_level(logging.WARNING, logger="flask_autotask_ilert"):
        assert callout(third, moved, "Complete") == 202
        drain(third)
    assert f"ticket {moved}: the integration key its alert went to is no longer configured" in caplog.text
    assert KEY_A not in caplog.text
    last = [e.body for e in tenant.ilert.events() if e.body.get("alertKey") == f"autotask-{moved}"][-1]
    assert (last["eventType"], last["integrationKey"]) == ("RESOLVE", INTEGRATION_KEY)


def test_a_new_alert_of_a_reopened_ticket_is_routed_anew(make_app: AppFactory, tenant: Tenant) -> None:
    app = routed_app(make_app, tenant, [{"match": {"priority": "Critical"}, "integration_key": KEY_A}],
                     realert_on_reopen=True)
    ticket = tenant.ticket("Core switch down", "Critical")
    assert callout(app, ticket) == 202
    assert callout(app, ticket, "Complete") == 202
    drain(app)
    tenant.autotask._patch_ticket({"id": ticket, "priority": 2})  # now Medium: no rule
    assert callout(app, ticket, "New") == 202
    assert callout(app, ticket, "In Progress") == 202
    drain(app)
    assert sent_to(tenant, ticket) == [("ALERT", KEY_A), ("RESOLVE", KEY_A),
                                       ("ALERT", INTEGRATION_KEY), ("ACCEPT", INTEGRATION_KEY)]


def test_each_key_has_its_own_pacing_budget(make_app: AppFactory, tenant: Tenant, clock: Clock) -> None:
    app = routed_app(make_app, tenant, [{"match": {"priority": "Critical"}, "integration_key": KEY_A}],
                     ilert_rate_limit=1, ilert_rate_window_seconds=60)
    to_a = [tenant.ticket(f"Critical {n}", "Critical") for n in range(2)]
    to_own = tenant.ticket("Medium one", "Medium")
    for ticket in (*to_a, to_own):
        assert callout(app, ticket) == 202
    drain(app)
    # One event a minute per key: one for A and one for the source's key went out at once,
    # the second for A waits for A's window, whatever the other key did.
    assert sent_to(tenant, to_a[0]) == [("ALERT", KEY_A)]
    assert sent_to(tenant, to_own) == [("ALERT", INTEGRATION_KEY)]
    assert sent_to(tenant, to_a[1]) == []
    due, _ = get_bridge(app).store.schedule("default", to_a[1])
    assert due is not None and due > get_bridge(app).store.now_ms() + 50_000
    clock.advance(65)
    drain(app)
    assert sent_to(tenant, to_a[1]) == [("ALERT", KEY_A)]


def test_rules_on_hours_use_the_callouts_activity_time(make_app: AppFactory, tenant: Tenant) -> None:
    app = routed_app(make_app, tenant, [{"hours": BERLIN_OFFICE, "integration_key": KEY_A}])
    night = tenant.ticket("Disk full at night")
    day = tenant.ticket("Disk full by day")
    holiday = tenant.ticket("Disk full at Christmas")
    # Autotask writes local times with an offset: US Eastern here.
    assert callout(app, night, when="2026-03-30T00:30:00.0000000-04:00:00") == 202  # 06:30 CEST
    assert callout(app, day, when="2026-03-30T02:30:00.0000000-04:00:00") == 202  # 08:30 CEST
    assert callout(app, holiday, when="2026-12-25T05:00:00.0000000-05:00:00") == 202  # 11:00 CET
    drain(app)
    assert sent_to(tenant, night) == [("ALERT", KEY_A)]
    assert sent_to(tenant, day) == [("ALERT", INTEGRATION_KEY)]
    assert sent_to(tenant, holiday) == [("ALERT", KEY_A)]


def test_the_route_is_kept_only_on_an_existing_record(make_app: AppFactory) -> None:
    store = get_bridge(make_app()).store
    assert store.set_route("default", 77, "abc") is False
    assert store.route("default", 77) is None
    assert store.client.exists(store.keys.mapping("default", 77)) == 0


# -- check and simulate ------------------------------------------------------------------------


def cli(app: Any, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["autotask-ilert", *args])
    for secret in SECRETS:
        assert secret not in result.output, f"{secret!r} printed by {args}"
    return result


def test_check_validates_each_rules_labels_and_key_and_renders_the_templates(
    make_app: AppFactory, tenant: Tenant
) -> None:
    good = routed_app(make_app, tenant, [
        {"match": {"queue": ["Monitoring Alert"], "issueType": "network", "ticketType": "Incident",
                   "source": "Email", "subIssueType": "Server Down", "company": "Anyone Inc"},
         "integration_key": KEY_A, "summary_template": "{{ company.companyName }}: {{ ticket.title }}"},
        {"match": {"priority": "Critical"}, "integration_key": KEY_B},
    ], summary_template="{{ ticket.priority }} {{ ticket.title }}")
    result = cli(good, "check")
    assert result.exit_code == 0, result.output
    assert "PASS  alert text             renders with a sample ticket; summary: 'Critical Server DC01" \
        in result.output
    assert "PASS  alert text, rule 0     renders with a sample ticket; summary: 'Example Customer" \
        in result.output
    assert "PASS  routing labels" in result.output
    assert "PASS  ilert, rule 0" in result.output and "PASS  ilert, rule 1" in result.output
    assert tenant.ilert.alerts() == []  # checking changed nothing

    bad = routed_app(make_app, tenant, [
        {"match": {"queue": ["Monitoring Alertt"]}, "integration_key": KEY_A},
        {"match": {"priority": "Critical"}, "integration_key": "il1api-unknown-to-ilert-555"},
    ], details_template="{{ ticket.priority / 2 }}")
    result = cli(bad, "check")
    assert result.exit_code == 1
    assert "FAIL  alert text             details template failed with a sample ticket: TypeError" \
        in result.output
    assert "FAIL  routing labels         rule 0: no ticket queue labelled 'monitoring alertt'" \
        in result.output
    assert "FAIL  ilert, rule 1" in result.output and "the rule's integration_key" in result.output
    assert "il1api-unknown-to-ilert-555" not in result.output


def test_simulate_says_which_rule_the_sample_ticket_meets(make_app: AppFactory, tenant: Tenant) -> None:
    from flask_autotask_ilert.testing.servers import ServerThread

    app = routed_app(make_app, tenant, [
        {"match": {"priority": "Low"}, "integration_key": KEY_B},
        {"match": {"priority": "Critical"}, "integration_key": KEY_A, "name": "noc"},
    ])
    critical = tenant.ticket("Core switch down", "Critical")
    with ServerThread(app) as server:
        result = cli(app, "simulate", "--url", server.url, "--ticket", str(critical))
        assert result.exit_code == 0, result.output
        assert f"route: ticket {critical} meets rule 1 (noc)" in result.output
        result = cli(app, "simulate", "--url", server.url)
        assert result.exit_code == 0, result.output
        assert "route: no rule matches ticket 999999999; its alert goes to the source's own key " \
               "(the ticket is not in Autotask" in result.output
