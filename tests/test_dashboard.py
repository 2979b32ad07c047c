"""docs/grafana-dashboard.json queries only metrics the bridge really serves.

The PromQL of every panel (and the Grafana variable's label_values) is read
for metric names, then the bridge is put through enough traffic that every
series exists (callouts, a webhook, a 429 and a retry, a delivery with its
latency, a dead letter, Autotask calls, a budget reading, a worker heartbeat) and /metrics is
scraped: a name the dashboard uses that the scrape lacks is a panel that
would stay empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import responses
from prometheus_client.parser import text_string_to_metric_families

from flask_autotask_ilert.checks import check_autotask
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.worker import Worker

from .conftest import TOKEN, AppFactory, Clock, data_text, drain

DASHBOARD = Path(__file__).parents[1] / "docs" / "grafana-dashboard.json"
ILERT = "http://ilert.invalid/api/events"
AT = "https://webservices5.autotask.net/atservicesrest"
HOOK = "dashboard-webhook-token-0123456"
FORM = "application/x-www-form-urlencoded"

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    expr = _STRING.sub('""', expr)
    expr = _GROUPING.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", expr)))
    return {name for name in _NAME.findall(expr) if name.lower() not in _KEYWORDS}


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = []

    def panels(items: list[dict[str, Any]]) -> None:
        for panel in items:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            panels(panel.get("panels", []))

    panels(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        found = re.fullmatch(r"label_values\((\w+)\s*,\s*\w+\)", str(variable.get("definition", "")))
        if found:
            exprs.append(found.group(1))
    return exprs


def test_the_name_parser_reads_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, source) (rate(a_bucket{source=~"$s", x="y{z}"}[5m])))'
        " / on (source) group_left max without (instance) (b_total offset 5m) > bool 2"
    ) == {"a_bucket", "b_total"}
    assert metric_names("max(up) * 60") == {"up"}


def test_every_metric_the_dashboard_queries_is_served(
    make_app: AppFactory, clock: Clock, rsps: responses.RequestsMock
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(expr) for expr in dashboard_queries(dashboard)))
    wanted = {  # what the dashboard is for: each must be on it
        "autotask_ilert_callouts_total", "autotask_ilert_delivery_latency_seconds_bucket",
        "autotask_ilert_queue_oldest_event_age_seconds", "autotask_ilert_dead_letters",
        "autotask_ilert_autotask_threshold_usage_ratio", "autotask_ilert_ilert_rate_limited_total",
    }
    assert wanted <= used, wanted - used

    app = make_app(ilert_rate_limit=0, bidirectional=True, webhook_token=HOOK,
                   ticket_updater=lambda update: None, autotask_username="api@example.com",
                   autotask_secret="at-secret-value-0", autotask_integration_code="AT-CODE",
                   autotask_api_url=AT)
    rsps.get(re.compile(rf"{AT}/v1\.0/Tickets/\d+$"), json=json.loads(data_text("autotask-ticket.json")))
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields",
             json=json.loads(data_text("autotask-ticket-fields.json")))
    rsps.get(f"{AT}/v1.0/ThresholdInformation",
             json={"externalRequestThreshold": 10000, "currentTimeframeRequestCount": 420})
    rsps.post(ILERT, status=429, json={"code": "RATE_LIMIT"}, headers={"Retry-After": "5"})
    rsps.post(ILERT, status=202, json={})
    rsps.post(ILERT, status=400, json={"code": "BAD_REQUEST", "message": "refused"})
    client = app.test_client()
    for ticket, status in ((7865, "New"), (7866, "Complete")):
        client.post(f"/autotask-ilert/callout/{TOKEN}", data=f"id={ticket}&status={status}",
                    content_type=FORM)
    client.post(f"/autotask-ilert/ilert/{HOOK}", json=json.loads(data_text("ilert-webhook-accepted.json")))
    drain(app)  # 429: retried
    clock.advance(10)
    drain(app)  # delivered, with its latency
    client.post(f"/autotask-ilert/callout/{TOKEN}", data="id=7867&status=New", content_type=FORM)
    drain(app)  # 400: a dead letter
    bridge = get_bridge(app)
    list(check_autotask(bridge, bridge.settings.sources["default"]))  # a budget reading
    Worker(bridge).beat()  # a running worker's heartbeat
    client.post(f"/autotask-ilert/callout/{TOKEN}", data="id=7868&status=New", content_type=FORM)

    scraped = client.get("/autotask-ilert/metrics").get_data(as_text=True)
    served = {s.name for family in text_string_to_metric_families(scraped) for s in family.samples}
    assert used <= served, f"queried but not in /metrics: {sorted(used - served)}"
