"""Routing, value by value: span edges to the minute, days across the week's end, each refusal's words,
and which of the source's templates a rule inherits."""

from __future__ import annotations

from typing import Any

import pytest

from flask_autotask_ilert.errors import ConfigurationError
from flask_autotask_ilert.routing import parse_hours

from .conftest import INTEGRATION_KEY, AppFactory, drain
from .tenant import KEY_A, KEY_B, Tenant, callout
from .test_routing import utc

# -- spans, to the minute ---------------------------------------------------------------------------


@pytest.mark.parametrize(("instant", "inside"), [
    ("2026-11-30T08:29:00", False),  # Monday
    ("2026-11-30T08:30:00", True),
    ("2026-11-30T17:44:00", True),
    ("2026-11-30T17:45:00", False),
    ("2026-11-30T23:58:00", True),   # the evening span, to its last minute but one
    ("2026-11-30T23:59:00", False),
    ("2026-11-30T21:59:00", False),
    ("2026-12-01T22:30:00", False),  # Tuesday: the evening span is Monday's only
])
def test_a_span_starts_and_ends_on_its_minutes(instant: str, inside: bool) -> None:
    hours = parse_hours({"inside": "Mon-Fri 08:30-17:45; Mon 22:00-23:59"})
    assert hours.within(utc(instant)) is inside


def test_a_day_range_may_pass_the_weeks_end() -> None:
    hours = parse_hours({"inside": "Fri-Mon 09:00-10:00"})
    week = ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-05",
            "2026-12-06"]  # Monday to Sunday
    assert [hours.within(utc(f"{day}T09:30:00")) for day in week] == [
        True, False, False, False, True, True, True]


@pytest.mark.parametrize(("raw", "says"), [
    (["Mon-Fri 08:00-18:00"], "hours must be a mapping"),
    ({"outside": "Mon-Fri 08:00-18:00", "timezone": "UTC", "days": "Mon"},
     "hours has unknown key(s) days, timezone"),
    ({"tz": "UTC"}, "hours needs exactly one of 'inside' and 'outside'"),
    ({"inside": "   "}, "hours: give spans such as 'Mon-Fri 08:00-18:00'"),
    ({"inside": 8}, "hours: give spans such as 'Mon-Fri 08:00-18:00'"),
    ({"inside": "Mon 08:00-18:00", "tz": "Mars/Olympus"},
     "hours: unknown time zone 'Mars/Olympus' (use an IANA name such as 'Europe/Berlin')"),
    ({"inside": "Mon 08:00-18:00", "holidays": "2026-12-25"},
     "hours: holidays must be a list of dates (YYYY-MM-DD)"),
    ({"inside": "Mon 08:00-18:00", "holidays": ["25.12.2026"]},
     "hours: holidays must be dates written YYYY-MM-DD"),
    ({"inside": "Mon 08:00-18:00", "holidays": ["20261225"]},  # read by Python 3.11, not by 3.10
     "hours: holidays must be dates written YYYY-MM-DD"),
    ({"inside": "Mon 08:00-18:00", "holidays": ["2026-02-30"]},
     "hours: holidays must be dates written YYYY-MM-DD"),
    ({"inside": "Mon 08:00-08:00"},
     "hours: 'Mon 08:00-08:00' ends before it starts (split a span that passes midnight in two)"),
    ({"inside": "Mon 08:00-25:00"}, "hours: '25:00' is not a time of day"),
    ({"inside": "Mon 08:00-24:30"}, "hours: '24:30' is not a time of day"),
    ({"inside": "Mon 08:60-09:00"}, "hours: '08:60' is not a time of day"),
])
def test_each_refusal_of_hours_says_what_is_wrong(raw: Any, says: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_hours(raw)
    assert str(error.value) == says


# -- rules, as the operator sees them at startup ------------------------------------------------------


@pytest.mark.parametrize(("rule", "says"), [
    ({"integration_key": KEY_A, "keys": 1, "rule": 2},
     "unknown key(s) keys, rule; a rule may have name, match, hours, integration_key, priority, "
     "summary_template, details_template, custom_details"),
    ({"integration_key": KEY_A, "name": 5}, "name must be text"),
    ({"integration_key": KEY_A, "match": ["queue"]}, "match must be a mapping of labels"),
    ({"integration_key": KEY_A, "match": {"queu": "x", "prio": "y"}},
     "match has unknown field(s) prio, queu; it may use queue, priority, company, issueType, "
     "subIssueType, ticketType, source"),
    ({"integration_key": KEY_A, "details_template": "{{ ticket.title }"},
     "DETAILS_TEMPLATE has a syntax error on line 1: unexpected '}'"),
    ({"integration_key": KEY_A, "custom_details": {"site": "{{ site }}"}},
     "CUSTOM_DETAILS['site'] uses unknown name(s) site; a template may use ticket, company, contact, "
     "resource, callout, source"),
])
def test_each_refusal_of_a_rule_says_what_is_wrong(
    make_app: AppFactory, rule: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        make_app(routes=[{"integration_key": KEY_B}, rule])
    assert str(error.value) == f"source 'default': ROUTES rule 1: {says}"


def test_a_bad_rule_is_named_before_the_rules_across_options(make_app: AppFactory) -> None:
    # ROUTES is checked with the other options, before the rules that combine them
    # (RECONCILE_FILTER's shape is one of those).
    with pytest.raises(ConfigurationError) as error:
        make_app(routes=[{"match": {"queue": "Monitoring Alert"}}], reconcile_filter=["queue"])
    assert str(error.value) == "source 'default': ROUTES rule 0: needs an integration_key"


# -- through the worker ---------------------------------------------------------------------------


def test_the_company_is_read_only_for_rules_that_match_on_it(make_app: AppFactory, tenant: Tenant) -> None:
    contoso = tenant.autotask.add_company("Contoso Ltd")
    app = make_app(**tenant.config(routes=[
        {"match": {"priority": "Critical", "queue": "Monitoring Alert"}, "integration_key": KEY_A},
    ]))
    ticket = tenant.ticket("Core switch down", "Critical", companyID=contoso["id"])
    assert callout(app, ticket) == 202
    drain(app)
    assert tenant.ilert.alert_for(f"autotask-{ticket}", integration_key=KEY_A) is not None
    assert tenant.calls("/Companies/") == 0


def test_a_rule_replaces_only_the_templates_it_has(make_app: AppFactory, tenant: Tenant) -> None:
    app = make_app(**tenant.config(
        summary_template="S: {{ ticket.title }}",
        details_template="D: {{ ticket.priority }}",
        custom_details={"team": "{{ source }}", "site": "HQ"},
        routes=[
            {"match": {"priority": "Critical"}, "integration_key": KEY_A,
             "details_template": "RD: {{ ticket.title }}",
             "custom_details": {"site": "DC1", "shift": "night"}},
            {"match": {"priority": "Low"}, "integration_key": KEY_B,
             "summary_template": "RS: {{ ticket.title }}"},
        ],
    ))
    critical = tenant.ticket("Core switch down", "Critical")
    low = tenant.ticket("Printer jam", "Low")
    medium = tenant.ticket("Password reset", "Medium")
    for ticket in (critical, low, medium):
        assert callout(app, ticket) == 202
    drain(app)

    first = tenant.ilert.alert_for(f"autotask-{critical}", integration_key=KEY_A)
    assert first is not None
    assert (first.summary, first.details) == ("S: Core switch down", "RD: Core switch down")
    custom = first.created_event["customDetails"]
    assert (custom["team"], custom["site"], custom["shift"]) == ("default", "DC1", "night")

    second = tenant.ilert.alert_for(f"autotask-{low}", integration_key=KEY_B)
    assert second is not None
    assert (second.summary, second.details) == ("RS: Printer jam", "D: Low")
    custom = second.created_event["customDetails"]
    assert (custom["team"], custom["site"]) == ("default", "HQ") and "shift" not in custom

    third = tenant.ilert.alert_for(f"autotask-{medium}", integration_key=INTEGRATION_KEY)
    assert third is not None
    assert (third.summary, third.details) == ("S: Password reset", "D: Medium")
