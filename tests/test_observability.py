"""Watching the bridge: /metrics, /readyz, and the one log line per callout, webhook and delivery.

Counters are process-wide (as Prometheus counters are), so tests compare a
scrape before and after; the shared-state gauges are read from Redis and are
exact. Time is the injected clock.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.worker import Worker

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, data_text, drain

ROOT = Path(__file__).parents[1]
ILERT = "http://ilert.invalid/api/events"
AT = "https://webservices5.autotask.net/atservicesrest"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
FORM = "application/x-www-form-urlencoded"
WEBHOOK_TOKEN = "observability-webhook-token-0123"
METRICS_TOKEN = "metrics-bearer-token-0123456789"
AUTOTASK = {
    "autotask_username": "api@example.com",
    "autotask_secret": "at-SECRET-value-9",
    "autotask_integration_code": "AT-CODE-SECRET",
    "autotask_api_url": AT,
}


def post(app: Flask, ticket: int, status: str, headers: dict[str, str] | None = None) -> Any:
    return app.test_client().post(CALLOUT, data=f"id={ticket}&status={status}", content_type=FORM,
                                  headers=headers or {})


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(app: Flask, headers: dict[str, str] | None = None) -> Samples:
    response = app.test_client().get("/autotask-ilert/metrics", headers=headers or {})
    assert response.status_code == 200, response.data
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- /metrics ---------------------------------------------------------------------------------


def test_callouts_are_counted_by_source_action_and_code(make_app: AppFactory) -> None:
    app = make_app()
    before = scrape(app)
    post(app, 7865, "New")
    post(app, 7865, "In Progress")
    post(app, 7866, "Complete")  # rejected: no alert for a ticket that arrives closed
    app.test_client().post("/autotask-ilert/callout/not-a-token-0123456789", data="id=1&status=New",
                           content_type=FORM)
    after = scrape(app)

    def delta(action: str, code: str, source: str = "default") -> float:
        labels = {"source": source, "action": action, "code": code}
        return value(after, "autotask_ilert_callouts_total", **labels) - value(
            before, "autotask_ilert_callouts_total", **labels)

    assert delta("create", "202") == 1
    assert delta("accept", "202") == 1
    assert delta("reject", "400") == 1
    assert delta("none", "404", source="") == 1


def test_queue_gauges_come_from_redis_and_follow_the_clock(
    make_app: AppFactory, clock: Clock, rsps: responses.RequestsMock
) -> None:
    app = make_app()
    post(app, 1, "New")
    clock.advance(30)
    post(app, 2, "New")
    clock.advance(15)
    samples = scrape(app)
    assert value(samples, "autotask_ilert_store_up") == 1
    assert value(samples, "autotask_ilert_queue_tickets") == 2
    assert value(samples, "autotask_ilert_queue_oldest_event_age_seconds") == 45
    assert value(samples, "autotask_ilert_dead_letters") == 0

    rsps.post(ILERT, status=400, json={"code": "BAD_REQUEST", "message": "no"})
    drain(app)
    samples = scrape(app)
    assert value(samples, "autotask_ilert_queue_tickets") == 0
    assert value(samples, "autotask_ilert_queue_oldest_event_age_seconds") == 0
    assert value(samples, "autotask_ilert_dead_letters") == 2


def test_deliveries_latency_and_ilert_429s_are_counted(
    make_app: AppFactory, clock: Clock, rsps: responses.RequestsMock
) -> None:
    app = make_app(ilert_rate_limit=0)
    rsps.post(ILERT, status=429, json={"code": "RATE_LIMIT"}, headers={"Retry-After": "20"})
    rsps.post(ILERT, status=202, json={})
    before = scrape(app)
    post(app, 7865, "New")
    clock.advance(2)
    drain(app)  # 429: retried later
    clock.advance(25)
    drain(app)  # delivered, 27 s after the callout
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    where = {"source": "default", "target": "ilert"}
    assert delta("autotask_ilert_deliveries_total", outcome="retry", **where) == 1
    assert delta("autotask_ilert_deliveries_total", outcome="delivered", **where) == 1
    assert delta("autotask_ilert_ilert_rate_limited_total", source="default") == 1
    assert delta("autotask_ilert_delivery_latency_seconds_count", **where) == 1
    assert delta("autotask_ilert_delivery_latency_seconds_bucket", le="10.0", **where) == 0
    assert delta("autotask_ilert_delivery_latency_seconds_bucket", le="30.0", **where) == 1


def test_already_done_is_its_own_outcome(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app()
    rsps.post(ILERT, status=202, json={})
    post(app, 5, "New")
    drain(app)
    rsps.replace(responses.POST, ILERT, status=400,
                 json={"code": "NO_OPEN_ALERT_WITH_KEY", "message": "none"})
    before = scrape(app)
    post(app, 5, "Complete")
    drain(app)
    after = scrape(app)
    labels = {"source": "default", "target": "ilert", "outcome": "already_done"}
    assert (value(after, "autotask_ilert_deliveries_total", **labels)
            - value(before, "autotask_ilert_deliveries_total", **labels)) == 1


def test_autotask_calls_are_counted_by_operation_without_ids(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app(**AUTOTASK)
    rsps.get(f"{AT}/v1.0/Tickets/7865", json=json.loads(data_text("autotask-ticket.json")))
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields",
             json=json.loads(data_text("autotask-ticket-fields.json")))
    rsps.post(ILERT, status=202, json={})
    before = scrape(app)
    post(app, 7865, "New")
    drain(app)
    response = app.test_client().get("/autotask-ilert/metrics")
    text = response.get_data(as_text=True)
    after = scrape(app)
    labels = {"source": "default", "operation": "GET Tickets/{id}", "code": "200"}
    assert (value(after, "autotask_ilert_autotask_requests_total", **labels)
            - value(before, "autotask_ilert_autotask_requests_total", **labels)) == 1
    fields = {"source": "default", "operation": "GET Tickets/entityInformation/fields", "code": "200"}
    assert value(after, "autotask_ilert_autotask_requests_total", **fields) >= 1
    # Only the label sets: a sample value (a duration, say) may contain the digits by chance.
    labels_text = [line.split("{", 1)[1].rsplit("}", 1)[0] for line in text.splitlines()
                   if line.startswith("autotask_ilert") and "{" in line]
    assert not any("7865" in line for line in labels_text)
    for secret in (TOKEN, INTEGRATION_KEY, AUTOTASK["autotask_secret"],
                   AUTOTASK["autotask_integration_code"]):
        assert secret not in text


def test_threshold_usage_is_the_last_reading(make_app: AppFactory) -> None:
    app = make_app(**AUTOTASK)
    bridge = get_bridge(app)
    client = bridge.autotask(bridge.settings.sources["default"])
    assert client is not None
    assert ("autotask_ilert_autotask_threshold_usage_ratio", (("source", "default"),)) not in scrape(app)
    bridge.store.cache_usage(client.integration_code_digest, 0.42, 300_000)
    assert value(scrape(app), "autotask_ilert_autotask_threshold_usage_ratio", source="default") == 0.42


def test_workers_gauge_counts_fresh_heartbeats(make_app: AppFactory, clock: Clock) -> None:
    app = make_app()
    Worker(get_bridge(app)).beat()
    clock.advance(10)
    Worker(get_bridge(app)).beat()
    samples = scrape(app)
    assert value(samples, "autotask_ilert_workers") == 2
    assert value(samples, "autotask_ilert_worker_heartbeat_age_seconds") == 0
    clock.advance(25)  # the first is now 35 s old, over READY_HEARTBEAT_SECONDS
    samples = scrape(app)
    assert value(samples, "autotask_ilert_workers") == 1
    assert value(samples, "autotask_ilert_worker_heartbeat_age_seconds") == 25


def test_metrics_token_is_required_when_set(make_app: AppFactory) -> None:
    app = make_app(metrics_token=METRICS_TOKEN)
    client = app.test_client()
    denied = client.get("/autotask-ilert/metrics")
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert client.get("/autotask-ilert/metrics",
                      headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/autotask-ilert/metrics",
                      headers={"Authorization": f"Basic {METRICS_TOKEN}"}).status_code == 401
    allowed = client.get("/autotask-ilert/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200
    assert METRICS_TOKEN not in allowed.get_data(as_text=True)


def test_metrics_are_open_by_default_and_served_as_openmetrics_on_request(make_app: AppFactory) -> None:
    app = make_app()
    response = app.test_client().get("/autotask-ilert/metrics",
                                     headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


@pytest.fixture
def host_metric() -> Any:
    """A metric the host app registers in the process-wide registry, as apps do."""
    from prometheus_client import REGISTRY, Counter

    counter = Counter("host_app_logins", "Logins to the host portal.")
    counter.inc()
    yield counter
    REGISTRY.unregister(counter)


def exposition(app: Flask) -> list[str]:
    response = app.test_client().get("/autotask-ilert/metrics")
    assert response.status_code == 200
    return [line for line in response.get_data(as_text=True).splitlines()
            if line and not line.startswith("#")]


def test_metrics_serve_only_the_bridges_own_by_default(make_app: AppFactory, host_metric: Any) -> None:
    app = make_app()
    post(app, 1, "New")
    lines = exposition(app)
    assert any(line.startswith("autotask_ilert_callouts_total") for line in lines)
    assert any(line.startswith("autotask_ilert_queue_tickets ") for line in lines)
    strangers = [line for line in lines if not line.startswith("autotask_ilert_")]
    assert strangers == []


def test_metrics_include_the_process_registry_when_asked(make_app: AppFactory, host_metric: Any) -> None:
    app = make_app(metrics_include_process=True)
    post(app, 1, "New")
    lines = exposition(app)
    assert any(line.startswith("host_app_logins_total ") for line in lines)
    assert any(line.startswith("python_gc_") for line in lines)
    if sys.platform.startswith("linux"):  # prometheus-client reads process figures from /proc
        assert any(line.startswith("process_") for line in lines)
    assert any(line.startswith("autotask_ilert_callouts_total") for line in lines)
    assert any(line.startswith("autotask_ilert_queue_tickets ") for line in lines)


def test_metrics_report_redis_down_instead_of_failing(make_app: AppFactory) -> None:
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    samples = scrape(app)
    assert value(samples, "autotask_ilert_store_up") == 0
    assert ("autotask_ilert_queue_tickets", ()) not in samples


def test_a_metrics_failure_never_fails_a_callout(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_autotask_ilert import metrics

    def broken(*labels: str) -> Any:
        raise OSError("no space left in PROMETHEUS_MULTIPROC_DIR")

    monkeypatch.setattr(metrics.CALLOUTS, "labels", broken)
    monkeypatch.setattr(metrics, "_failed_once", threading.Event())
    app = make_app()
    assert post(app, 1, "New").status_code == 202
    assert post(app, 2, "New").status_code == 202
    assert sum("counting failed" in r.getMessage() for r in caplog.records) == 1


def test_metrics_token_must_be_long(make_app: AppFactory) -> None:
    from flask_autotask_ilert import ConfigurationError

    with pytest.raises(ConfigurationError, match="METRICS_TOKEN") as raised:
        make_app(metrics_token="short")
    assert "short" not in str(raised.value)


@pytest.mark.realprocess
def test_multiprocess_mode_adds_up_processes_and_counts_shared_state_once(
    tmp_path: Path, redis_server: str, redis_prefix: str
) -> None:
    """Two gunicorn-like processes: one answers callouts and exits, the other is scraped."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(ROOT)}
    setup = textwrap.dedent(f"""
        from flask import Flask
        from flask_autotask_ilert import AutotaskIlert
        app = Flask("mp")
        app.config.update(AUTOTASK_ILERT_CALLOUT_TOKEN={TOKEN!r},
                          AUTOTASK_ILERT_ILERT_INTEGRATION_KEY={INTEGRATION_KEY!r},
                          AUTOTASK_ILERT_REDIS_URL={redis_server!r},
                          AUTOTASK_ILERT_REDIS_PREFIX={redis_prefix!r})
        AutotaskIlert(app)
        client = app.test_client()
    """)
    answer = textwrap.dedent(f"""
        import sys
        for ticket in sys.argv[1:]:
            r = client.post({CALLOUT!r}, data=f"id={{ticket}}&status=New",
                            content_type={FORM!r})
            assert r.status_code == 202, r.data
    """)
    scrape_code = "print(client.get('/autotask-ilert/metrics').get_data(as_text=True))"
    for tickets in (["1", "2"], ["3", "4"]):
        subprocess.run([sys.executable, "-c", setup + answer, *tickets], env=env, check=True,
                       timeout=60)
    out = subprocess.run([sys.executable, "-c", setup + scrape_code], env=env, check=True,
                         timeout=60, capture_output=True, text=True).stdout
    lines = out.splitlines()
    assert 'autotask_ilert_callouts_total{action="create",code="202",source="default"} 4.0' in lines
    assert [line for line in lines if line.startswith("autotask_ilert_queue_tickets ")] == [
        "autotask_ilert_queue_tickets 4.0"
    ]


# -- /readyz -------------------------------------------------------------------------------


def readyz(app: Flask) -> tuple[int, dict[str, Any]]:
    response = app.test_client().get("/autotask-ilert/readyz")
    return response.status_code, response.get_json()


def test_not_ready_without_a_worker(make_app: AppFactory) -> None:
    code, body = readyz(make_app())
    assert code == 503
    assert body["status"] == "not ready"
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["worker"]["last_heartbeat_age_s"] is None
    assert "worker" in body["checks"]["worker"]["error"]
    assert body["checks"]["queue"] == {"ok": True, "oldest_age_s": None, "tickets": 0}


def test_ready_with_a_fresh_heartbeat_and_not_after_it_ages(make_app: AppFactory, clock: Clock) -> None:
    app = make_app(ready_heartbeat_seconds=20)
    Worker(get_bridge(app)).beat()
    clock.advance(5)
    code, body = readyz(app)
    assert code == 200
    assert body == {
        "status": "ready",
        "checks": {
            "redis": {"ok": True},
            "worker": {"ok": True, "last_heartbeat_age_s": 5.0},
            "queue": {"ok": True, "oldest_age_s": None, "tickets": 0},
        },
    }
    clock.advance(16)
    code, body = readyz(app)
    assert code == 503
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["worker"]["last_heartbeat_age_s"] == 21.0
    assert "21 s" in body["checks"]["worker"]["error"]


def test_not_ready_when_the_oldest_event_is_stuck(make_app: AppFactory, clock: Clock) -> None:
    app = make_app(ready_queue_age_seconds=120)
    worker = Worker(get_bridge(app))
    post(app, 7865, "New")
    clock.advance(100)
    worker.beat()
    assert readyz(app)[0] == 200
    clock.advance(30)
    worker.beat()
    code, body = readyz(app)
    assert code == 503
    assert body["checks"]["worker"]["ok"] is True
    assert body["checks"]["queue"]["ok"] is False
    assert body["checks"]["queue"]["oldest_age_s"] == 130.0
    assert body["checks"]["queue"]["tickets"] == 1
    assert "130 s" in body["checks"]["queue"]["error"]


def test_not_ready_when_redis_is_down(make_app: AppFactory) -> None:
    code, body = readyz(make_app(redis_url="redis://127.0.0.1:1/0"))
    assert code == 503
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["worker"]["ok"] is False


class _OneBeat(threading.Event):
    """A stop event that lets the heartbeat loop beat once, and records what Redis held then."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app
        self.seen: list[tuple[str, int]] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.seen = get_bridge(self.app).store.heartbeats()
        return True


def test_a_running_worker_beats_and_withdraws_when_stopped(make_app: AppFactory, clock: Clock) -> None:
    app = make_app()
    worker = Worker(get_bridge(app))
    stop = _OneBeat(app)
    worker._heartbeat(stop)
    assert stop.seen == [(worker.name, int(clock.now * 1000))]
    assert worker.name.split(":")[1] == str(os.getpid())
    assert get_bridge(app).store.heartbeats() == []


def test_old_heartbeats_are_pruned(make_app: AppFactory, clock: Clock) -> None:
    app = make_app()
    gone, alive = Worker(get_bridge(app)), Worker(get_bridge(app))
    gone.beat()
    clock.advance(2 * 86_400)
    alive.beat()
    assert [name for name, _ in get_bridge(app).store.heartbeats()] == [alive.name]


# -- logs -----------------------------------------------------------------------------------


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if getattr(r, "autotask_ilert", {}).get("event") == event]


def test_one_line_per_callout_with_the_request_id_echoed(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_autotask_ilert")
    app = make_app()
    response = post(app, 7865, "In Progress", headers={"X-Request-Id": "req-42.a"})
    assert response.headers["X-Request-Id"] == "req-42.a"
    [record] = lines(caplog, "callout")
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("callout request_id=req-42.a source=default ticket=7865 "
                              'status="In Progress" action=create state=NONE->PENDING outcome=202 ')
    assert "duration_ms=" in message


def test_unsafe_request_ids_are_replaced(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    app = make_app()
    response = post(app, 1, "New", headers={"X-Request-Id": 'evil" id\twith spaces'})
    given = response.headers["X-Request-Id"]
    assert given and " " not in given and '"' not in given
    assert lines(caplog, "callout")[0].autotask_ilert["request_id"] == given  # type: ignore[attr-defined]
    other = post(app, 2, "New")
    assert other.headers["X-Request-Id"] != given


def test_refused_callouts_get_one_line_too(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    app = make_app()
    bad = app.test_client().post(CALLOUT, data="id=abc&status=New", content_type=FORM)
    unknown = app.test_client().post("/autotask-ilert/callout/no-such-token-0123456789",
                                     data="id=1&status=New", content_type=FORM)
    assert bad.status_code == 400 and unknown.status_code == 404
    assert "X-Request-Id" not in unknown.headers  # the 404 looks like any other unknown URL
    first, second = lines(caplog, "callout")
    assert first.autotask_ilert["outcome"] == 400  # type: ignore[attr-defined]
    assert first.autotask_ilert["error"] == "invalid_payload"  # type: ignore[attr-defined]
    assert second.autotask_ilert["outcome"] == 404  # type: ignore[attr-defined]
    assert "source" not in second.autotask_ilert  # type: ignore[attr-defined]


def test_redis_down_is_one_warning_line(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    assert post(app, 1, "New").status_code == 503
    records = [r for r in caplog.records if r.name == "flask_autotask_ilert"
               and "mounted" not in r.getMessage()]
    [record] = records
    assert record.levelno == logging.WARNING
    assert "outcome=503" in record.getMessage() and "error=store_unavailable" in record.getMessage()


def test_json_lines_and_delivery_lines_carry_the_callouts_request_id(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, rsps: responses.RequestsMock, clock: Clock
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_autotask_ilert")
    app = make_app(log_format="json", ilert_rate_limit=0)
    rsps.post(ILERT, status=503)
    rsps.post(ILERT, status=202, json={})
    post(app, 7865, "New", headers={"X-Request-Id": "trace-1"})
    drain(app)
    clock.advance(600)  # the retry is due
    drain(app)
    callout = json.loads(lines(caplog, "callout")[0].getMessage())
    assert callout["event"] == "callout" and callout["request_id"] == "trace-1"
    assert callout["outcome"] == 202 and callout["ticket"] == 7865
    deliveries = [json.loads(r.getMessage()) for r in lines(caplog, "delivery")]
    assert [(d["outcome"], d["attempt"]) for d in deliveries] == [("retry", 1), ("delivered", 2)]
    assert all(d["request_id"] == "trace-1" and d["ticket"] == 7865 for d in deliveries)
    assert deliveries[0]["http_status"] == 503 and "next_in_s" in deliveries[0]
    assert "latency_ms" in deliveries[1] and "duration_ms" in deliveries[1]
    text = caplog.text
    assert INTEGRATION_KEY not in text and TOKEN not in text


def test_dead_letter_is_one_error_line(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, rsps: responses.RequestsMock
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_autotask_ilert")
    app = make_app()
    rsps.post(ILERT, status=404, json={"code": "NO_ALERT_SOURCE_FOUND", "message": "unknown key"})
    post(app, 3, "New")
    drain(app)
    [record] = lines(caplog, "delivery")
    assert record.levelno == logging.ERROR
    assert record.autotask_ilert["outcome"] == "dead"  # type: ignore[attr-defined]
    assert record.autotask_ilert["http_status"] == 404  # type: ignore[attr-defined]


def test_one_line_per_webhook(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    app = make_app(bidirectional=True, webhook_token=WEBHOOK_TOKEN,
                   ticket_updater=lambda update: None)
    post(app, 7865, "New")
    body = json.loads(data_text("ilert-webhook-accepted.json"))
    response = app.test_client().post(f"/autotask-ilert/ilert/{WEBHOOK_TOKEN}", json=body,
                                      headers={"X-Request-Id": "hook-1"})
    assert response.status_code == 202
    [record] = lines(caplog, "webhook")
    message = record.getMessage()
    assert message.startswith("webhook request_id=hook-1 source=default alert=2983781 status=ACCEPTED "
                              "event_type=alert-acknowledged ticket=7865 action=accept-ticket "
                              "state=ACCEPTED outcome=202 ")
    assert WEBHOOK_TOKEN not in caplog.text


def test_the_library_adds_no_handler_of_its_own() -> None:
    handlers = logging.getLogger("flask_autotask_ilert").handlers
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
