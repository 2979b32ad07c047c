"""Routing and custom alert text in the real deployment: gunicorn, a separate worker process,
redis-server, and the ilert and Autotask simulators, configured from the environment."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.deployment import Deployment, wait_until

pytestmark = pytest.mark.realprocess  # slow; deselect with -m "not realprocess"

NOC_KEY = "il1api-e2e-noc-key-0123456789"
CONTOSO_KEY = "il1api-e2e-contoso-key-987654"


@pytest.fixture
def routed(deploy: Callable[..., Deployment]) -> Deployment:
    routes = [
        {"name": "noc", "match": {"queue": ["monitoring alert"], "priority": ["Critical"]},
         "integration_key": NOC_KEY, "summary_template": "NOC {{ ticket.priority }}: {{ ticket.title }}"},
        {"name": "contoso", "match": {"company": "CONTOSO LTD"}, "integration_key": CONTOSO_KEY,
         "priority": "LOW"},
    ]
    running = deploy(extra_env={
        "AUTOTASK_ILERT_ROUTES": json.dumps(routes),
        "AUTOTASK_ILERT_SUMMARY_TEMPLATE": "{{ company.companyName }} / {{ ticket.title }}",
    })
    running.ilert.integration_keys |= {NOC_KEY, CONTOSO_KEY}
    return running


def test_two_routes_send_two_tickets_to_two_keys_with_templated_summaries(routed: Deployment) -> None:
    contoso = routed.autotask.add_company("Contoso Ltd")
    routed.start(workers=1)
    critical, _ = routed.autotask.create_ticket("Core switch down", "Critical")
    printer, _ = routed.autotask.create_ticket("Printer offline", "Medium", company_id=contoso["id"])
    other, _ = routed.autotask.create_ticket("Password reset", "Medium")

    def alerts() -> dict[int, object]:
        return {t["id"]: routed.ilert.alert_for(f"autotask-{t['id']}") for t in (critical, printer, other)}

    wait_until(lambda: all(alerts().values()), 30, what=f"three alerts; log:\n{routed.logs()[-2000:]}")
    noc = routed.ilert.alert_for(f"autotask-{critical['id']}", integration_key=NOC_KEY)
    assert noc is not None and noc.summary == "NOC Critical: Core switch down"
    assert noc.priority == "HIGH"
    company = routed.ilert.alert_for(f"autotask-{printer['id']}", integration_key=CONTOSO_KEY)
    assert company is not None and company.summary == "Contoso Ltd / Printer offline"
    assert company.priority == "LOW"
    own = routed.ilert.alert_for(f"autotask-{other['id']}", integration_key=routed.integration_key)
    assert own is not None and own.summary == "/ Password reset"  # no company: blank, not an error

    # Closing the tickets resolves each alert where it was raised.
    for ticket in (critical, printer):
        routed.autotask.set_status(ticket["id"], "Complete")
    wait_until(lambda: noc_status(routed, critical["id"], NOC_KEY) == "RESOLVED"
               and noc_status(routed, printer["id"], CONTOSO_KEY) == "RESOLVED", 30,
               what="both alerts resolved")
    # Company 0 (the tenant's own, none in the simulator) and Contoso: each read once, then cached.
    assert len(routed.autotask.calls_matching("GET", "/Companies/")) == 2
    logs = routed.logs()
    for secret in (NOC_KEY, CONTOSO_KEY, routed.integration_key, routed.token):
        assert secret not in logs


def noc_status(routed: Deployment, ticket: int, key: str) -> str | None:
    alert = routed.ilert.alert_for(f"autotask-{ticket}", integration_key=key)
    return alert.status if alert is not None else None
