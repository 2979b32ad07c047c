"""Custom alert text: templates over the ticket, its company, contact and resource, the callout."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from flask_autotask_ilert.errors import ConfigurationError
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.templates import build

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, drain
from .tenant import Tenant, callout

SECRETS = (TOKEN, INTEGRATION_KEY, "sim-secret", "SIMCODE")


def errors_counted(source: str, template: str) -> float:
    value = REGISTRY.get_sample_value(
        "autotask_ilert_template_errors_total", {"source": source, "template": template}
    )
    return value or 0.0


def test_templates_see_the_ticket_labels_company_contact_resource_callout_and_source(
    make_app: AppFactory, tenant: Tenant
) -> None:
    company = tenant.autotask.add_company("Contoso Ltd", phone="+49 30 1234")
    contact = tenant.autotask.add_contact("Jane", "Doe", company["id"], emailAddress="jane@contoso.test")
    resource = tenant.autotask.add_resource("Sam", "Tech", email="sam@msp.test")
    app = make_app(**tenant.config(
        summary_template="{{ company.companyName }} | {{ ticket.priority }} | {{ ticket.queue }} | "
                         "{{ ticket.issueType }}/{{ ticket.subIssueType }} | {{ ticket.title }}",
        details_template="Contact: {{ contact.firstName }} {{ contact.lastName }} "
                         "<{{ contact.emailAddress }}>\nTech: {{ resource.lastName }}\n"
                         "Callout: {{ callout.status }} from {{ source }}\n"
                         "Type: {{ ticket.ticketType }}, via {{ ticket.source }}",
        custom_details={"phone": "{{ company.phone }}", "link": "{{ ticket.url }}"},
    ))
    ticket = tenant.ticket(
        "Backup job failed", "Critical", companyID=company["id"], contactID=contact["id"],
        assignedResourceID=resource["id"], issueType=tenant.autotask.picklist_value("issueType", "Software"),
        subIssueType=tenant.autotask.picklist_value("subIssueType", "Backup Failure"),
        ticketType=tenant.autotask.picklist_value("ticketType", "Alert"),
    )
    assert callout(app, ticket) == 202
    drain(app)

    alert = tenant.ilert.alert_for(f"autotask-{ticket}")
    assert alert is not None
    assert alert.summary == ("Contoso Ltd | Critical | Monitoring Alert | Software/Backup Failure | "
                             "Backup job failed")
    assert alert.details == ("Contact: Jane Doe <jane@contoso.test>\nTech: Tech\n"
                             "Callout: New from default\nType: Alert, via Monitoring Alert")
    custom = alert.created_event["customDetails"]
    assert custom["phone"] == "+49 30 1234"
    assert custom["link"].endswith(f"ticketId={ticket}")
    assert custom["ticketId"] == ticket  # the default details stay


def test_an_entity_is_read_once_per_cache_period_and_only_when_named(
    make_app: AppFactory, tenant: Tenant, clock: Clock
) -> None:
    company = tenant.autotask.add_company("Fabrikam")
    app = make_app(**tenant.config(summary_template="{{ company.companyName }}: {{ ticket.title }}",
                                   entity_cache_seconds=600))
    first = tenant.ticket("Disk full", companyID=company["id"])
    second = tenant.ticket("CPU high", companyID=company["id"])
    assert callout(app, first) == 202
    drain(app)
    assert tenant.calls("/Companies/") == 1
    assert callout(app, second) == 202
    drain(app)
    assert tenant.calls("/Companies/") == 1  # the second alert of the company cost no call
    assert tenant.calls("/Contacts/") == 0 and tenant.calls("/Resources/") == 0  # never named
    assert tenant.ilert.alert_for(f"autotask-{second}").summary == "Fabrikam: CPU high"  # type: ignore[union-attr]

    clock.advance(601)  # the cached copy has expired: read again, once
    third = tenant.ticket("RAM low", companyID=company["id"])
    assert callout(app, third) == 202
    drain(app)
    assert tenant.calls("/Companies/") == 2


def test_a_missing_entity_renders_blank_and_is_cached_too(make_app: AppFactory, tenant: Tenant) -> None:
    app = make_app(**tenant.config(summary_template="[{{ contact.lastName }}] {{ ticket.title }}"))
    tickets = [tenant.ticket("No contact"), tenant.ticket("Unknown contact", contactID=424242),
               tenant.ticket("Unknown contact again", contactID=424242)]
    for ticket in tickets:
        assert callout(app, ticket) == 202
    drain(app)
    assert tenant.ilert.alert_for(f"autotask-{tickets[0]}").summary == "[] No contact"  # type: ignore[union-attr]
    assert tenant.calls("/Contacts/") == 1  # none for a ticket without one; "none" is cached


def test_without_templates_the_text_is_the_default_and_no_entity_is_read(
    make_app: AppFactory, tenant: Tenant
) -> None:
    company = tenant.autotask.add_company("Contoso Ltd")
    app = make_app(**tenant.config())
    ticket = tenant.ticket("Server DC01 unreachable", companyID=company["id"])
    number = tenant.autotask.ticket(ticket)["ticketNumber"]  # type: ignore[index]
    assert callout(app, ticket) == 202
    drain(app)
    alert = tenant.ilert.alert_for(f"autotask-{ticket}")
    assert alert is not None and alert.summary == f"[{number}] Server DC01 unreachable"
    assert tenant.calls("/Companies/") == 0


def test_templates_work_without_autotask_from_the_callout(make_app: AppFactory, tenant: Tenant) -> None:
    app = make_app(ilert_api_url=tenant.ilert_url, ilert_rate_limit=0,
                   summary_template="{{ source }}: ticket {{ ticket.id }} is {{ callout.status }}"
                                    "{{ company.companyName }}")
    assert callout(app, 5150) == 202
    drain(app)
    assert tenant.ilert.alert_for("autotask-5150").summary == "default: ticket 5150 is New"  # type: ignore[union-attr]


@pytest.mark.parametrize(("option", "value", "says"), [
    ("summary_template", "{{ ticket.title ", "SUMMARY_TEMPLATE has a syntax error"),
    ("details_template", "{% if ticket %}x", "DETAILS_TEMPLATE has a syntax error"),
    ("summary_template", "{{ tikcet.title }}", "SUMMARY_TEMPLATE uses unknown name(s) tikcet"),
    ("custom_details", {"site": "{{ site }}"}, "CUSTOM_DETAILS ['site'] uses unknown name(s) site"),
    ("custom_details", ["{{ ticket.id }}"], "CUSTOM_DETAILS must be a mapping"),
    ("summary_template", "  ", "SUMMARY_TEMPLATE must be non-empty"),
])
def test_a_bad_template_stops_the_app_at_startup_naming_the_option(
    make_app: AppFactory, option: str, value: object, says: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        make_app(**{option: value})
    assert says in str(error.value)


def test_a_template_that_fails_while_rendering_never_holds_the_page(
    make_app: AppFactory, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(**tenant.config(
        # The sandbox refuses to reach into Python's internals: that raises while rendering.
        summary_template="{{ ticket.title.__class__.__mro__ }}",
        details_template="{{ ticket.priority / 0 }}",
        custom_details={"ok": "{{ ticket.title | upper }}"},
    ))
    before = (errors_counted("default", "summary"), errors_counted("default", "details"))
    ticket = tenant.ticket("Firewall down")
    number = tenant.autotask.ticket(ticket)["ticketNumber"]  # type: ignore[index]
    with caplog.at_level(logging.WARNING, logger="flask_autotask_ilert"):
        assert callout(app, ticket) == 202
        drain(app)
    alert = tenant.ilert.alert_for(f"autotask-{ticket}")
    assert alert is not None and alert.summary == f"[{number}] Firewall down"  # the default text
    assert alert.created_event["customDetails"]["ok"] == "FIREWALL DOWN"  # the others still render
    assert errors_counted("default", "summary") == before[0] + 1
    assert errors_counted("default", "details") == before[1] + 1
    assert "the summary template failed (SecurityError" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


def test_rendering_errors_are_caught_and_names_found() -> None:
    templates = build("{{ company.companyName }}{{ ticket.x }}", None, {"c": "{{ resource.email }}"})
    assert templates is not None
    assert templates.entities == {"company", "resource"}
    rendered = templates.render({"ticket": {}, "company": None, "resource": {"email": "a@b"}})
    assert rendered.summary == "" and rendered.custom_details == {"c": "a@b"}
    assert build(None, "", {}) is None


def test_the_sandbox_keeps_templates_from_calling_into_the_process() -> None:
    templates = build("{{ callout.__init__.__globals__ }}")
    assert templates is not None
    rendered = templates.render({"callout": {}})
    assert rendered.summary is None and rendered.failures[0][0] == "summary"


def test_the_entity_cache_lives_in_redis_for_every_worker(make_app: AppFactory, tenant: Tenant) -> None:
    company = tenant.autotask.add_company("Northwind")
    app = make_app(**tenant.config(summary_template="{{ company.companyName }}"))
    assert callout(app, tenant.ticket(companyID=company["id"])) == 202
    drain(app)
    store = get_bridge(app).store
    keys = [k.decode() for k in store.client.scan_iter(match=f"{store.keys.prefix}entity:*")]
    assert len(keys) == 1 and keys[0].endswith(f":Companies:{company['id']}")
    assert 0 < store.client.pttl(keys[0]) <= 3_600_000


@pytest.mark.parametrize("text", ['{{ "x" * 10**9 }}', "{{ ticket.title * 1000000 }}", "{{ 2 ** 1000 }}"])
def test_a_template_cannot_build_huge_values(text: str) -> None:
    templates = build(text)
    assert templates is not None
    rendered = templates.render({"ticket": {"title": "Disk full"}})
    assert rendered.summary is None and "SecurityError" in rendered.failures[0][1]
    small = build('{{ "=" * 20 }} {{ 2 ** 10 }}')
    assert small is not None and small.render({}).summary == "=" * 20 + " 1024"
