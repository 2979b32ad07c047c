"""Delivery: what ilert receives, in what order, and what happens when things fail.

Outbound HTTP is faked at the adapter level with ``responses``; time is an
injected clock, so retries and pacing are checked without waiting.
"""

from __future__ import annotations

import json
from typing import Any

import requests
import responses
from flask import Flask

from flask_autotask_ilert.extension import get_bridge

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, data_text, drain

ILERT = "http://ilert.invalid/api/events"
AT = "https://webservices5.autotask.net/atservicesrest"
URL = f"/autotask-ilert/callout/{TOKEN}"
FIELDS = json.loads(data_text("autotask-ticket-fields.json"))
AUTOTASK = {
    "autotask_username": "api@example.com",
    "autotask_secret": "at-SECRET-value-9",
    "autotask_integration_code": "AT-CODE-SECRET",
    "autotask_api_url": AT,
}


def callout(app: Flask, ticket: int, status: str, stamp: str = "") -> int:
    body = f"id={ticket}&number=T{ticket}&status={status}&domain=EXAMPLE"
    if stamp:
        body += f"&last_activity_datetime={stamp}"
    response = app.test_client().post(URL, data=body, content_type="application/x-www-form-urlencoded")
    return int(response.status_code)


def sent(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(c.request.body) for c in rsps.calls if c.request.url == ILERT]


def autotask_ok(rsps: responses.RequestsMock) -> None:
    ticket = json.loads(data_text("autotask-ticket.json"))
    rsps.get(f"{AT}/v1.0/Tickets/7865", json=ticket)
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)


def test_alert_is_built_from_the_ticket(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(**AUTOTASK, autotask_web_url="https://ww5.autotask.net")
    autotask_ok(rsps)
    rsps.post(ILERT, status=202, json={})
    assert callout(app, 7865, "New") == 202
    assert drain(app) == 1
    [event] = sent(rsps)
    expected = json.loads(data_text("ilert-event-alert.json"))
    assert event["integrationKey"] == INTEGRATION_KEY
    for key in ("eventType", "summary", "details", "alertKey", "priority", "links"):
        assert event[key] == expected[key], key
    assert event["customDetails"]["ticketNumber"] == "T20191029.0002"
    assert event["customDetails"]["priority"] == "Critical"
    assert event["customDetails"]["queue"] == 29683354
    assert event["customDetails"]["companyId"] == 0
    assert get_bridge(app).store.queue_stats()["tickets"] == 0


def test_low_priority_ticket_pages_low(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(**AUTOTASK)
    ticket = json.loads(data_text("autotask-ticket.json"))
    ticket["item"]["priority"] = 3
    rsps.get(f"{AT}/v1.0/Tickets/7865", json=ticket)
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)
    rsps.post(ILERT, status=202)
    callout(app, 7865, "New")
    drain(app)
    assert sent(rsps)[0]["priority"] == "LOW"


def test_without_autotask_the_alert_uses_the_callout(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=202)
    callout(app, 42, "New")
    drain(app)
    [event] = sent(rsps)
    assert event["summary"].startswith("[T42] ")
    assert event["priority"] == "HIGH"
    assert event["alertKey"] == "autotask-42"
    assert "links" not in event


def test_autotask_down_pages_after_bounded_tries(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_attempts=3, enrich_deadline_seconds=3600)  # attempts decide
    rsps.get(f"{AT}/v1.0/Tickets/7865", status=500, json={"errors": ["boom"]})
    rsps.post(ILERT, status=202)
    callout(app, 7865, "New")
    for _ in range(5):
        drain(app)
        clock.advance(400)
    reads = [c for c in rsps.calls if "/Tickets/7865" in c.request.url]
    assert len(reads) == 3
    [event] = sent(rsps)
    assert event["summary"] == "[T7865] Autotask ticket 7865 (New)"


def test_missing_ticket_pages_at_once(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(**AUTOTASK)
    rsps.get(f"{AT}/v1.0/Tickets/7865", json={"item": None})
    rsps.post(ILERT, status=202)
    callout(app, 7865, "New")
    drain(app)
    assert len(sent(rsps)) == 1


def test_status_changes_cost_no_autotask_calls_and_picklists_are_cached(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app(**AUTOTASK)
    fields = json.loads(data_text("autotask-ticket-fields.json"))
    ticket = json.loads(data_text("autotask-ticket.json"))
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=fields)
    for n in (1, 2, 3):
        rsps.get(f"{AT}/v1.0/Tickets/{n}", json={"item": {**ticket["item"], "id": n}})
    rsps.post(ILERT, status=202)
    for n in (1, 2, 3):  # one at a time: new tickets taken up together are read in one query
        callout(app, n, "New")
        drain(app)
    autotask_calls = [c for c in rsps.calls if c.request.url.startswith(AT)]
    assert len(autotask_calls) == 3 + 1  # one read per alert, the picklists once
    for n in (1, 2, 3):
        callout(app, n, "In+Progress")
        callout(app, n, "Complete")
    drain(app)
    assert len([c for c in rsps.calls if c.request.url.startswith(AT)]) == 4
    assert [e["eventType"] for e in sent(rsps)].count("RESOLVE") == 3


def test_events_go_out_in_order_even_when_the_worker_was_behind(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=202)
    callout(app, 1, "New")
    callout(app, 1, "In+Progress")
    callout(app, 1, "Complete")
    callout(app, 2, "New")
    callout(app, 2, "Complete")
    drain(app)
    per_ticket: dict[str, list[str]] = {}
    for event in sent(rsps):
        per_ticket.setdefault(event["alertKey"], []).append(event["eventType"])
    assert per_ticket == {
        "autotask-1": ["ALERT", "ACCEPT", "RESOLVE"],
        "autotask-2": ["ALERT", "RESOLVE"],  # no invented ACCEPT
    }


def test_server_errors_are_retried_with_backoff(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=503)
    rsps.post(ILERT, status=502)
    rsps.post(ILERT, body=requests.exceptions.ConnectionError("reset"))
    rsps.post(ILERT, status=202)
    callout(app, 1, "New")
    callout(app, 1, "Complete")
    for _ in range(6):
        drain(app)
        clock.advance(60)
    events = sent(rsps)
    assert [e["eventType"] for e in events] == ["ALERT"] * 4 + ["RESOLVE"]


def test_retry_after_is_honoured(make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock) -> None:
    app = make_app()
    rsps.post(ILERT, status=429, headers={"Retry-After": "20"})
    rsps.post(ILERT, status=202)
    callout(app, 1, "New")
    drain(app)
    clock.advance(19)
    drain(app)
    assert len(sent(rsps)) == 1
    clock.advance(2)
    drain(app)
    assert len(sent(rsps)) == 2


def test_rejected_events_are_dead_lettered_without_secrets(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=404, json={"status": 404, "message": f"no source {INTEGRATION_KEY}",
                                       "code": "NO_ALERT_SOURCE_FOUND"})
    rsps.post(ILERT, status=202)
    callout(app, 1, "New")
    callout(app, 1, "Complete")
    drain(app)
    [dead] = get_bridge(app).store.dead_letters()
    assert dead["event"]["action"] == "create" and dead["status"] == 404
    assert "NO_ALERT_SOURCE_FOUND" in dead["reason"]
    assert INTEGRATION_KEY not in json.dumps(dead)
    assert [e["eventType"] for e in sent(rsps)] == ["ALERT", "RESOLVE"]


def test_no_open_alert_counts_as_done(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app()
    rsps.post(ILERT, status=202)
    rsps.post(ILERT, status=400, json={"status": 400, "message": "x", "code": "NO_OPEN_ALERT_WITH_KEY"})
    callout(app, 1, "New")
    callout(app, 1, "Complete")
    drain(app)
    store = get_bridge(app).store
    assert store.dead_letters() == []
    assert store.queue_stats()["tickets"] == 0


def test_pacing_keeps_under_the_rate_limit(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(ilert_rate_limit=3, ilert_rate_window_seconds=60)
    rsps.post(ILERT, status=202)
    for n in range(1, 8):
        callout(app, n, "New")
    drain(app)
    assert len(sent(rsps)) == 3
    clock.advance(30)
    drain(app)
    assert len(sent(rsps)) == 3
    clock.advance(31)  # 61 s: within the pacing margin (2% of the window) the window is still full
    drain(app)
    assert len(sent(rsps)) == 3
    clock.advance(1)
    drain(app)
    assert len(sent(rsps)) == 6
    clock.advance(61)
    drain(app)
    assert len(sent(rsps)) == 7
    assert not [c for c in rsps.calls if c.response is not None and c.response.status_code == 429]


def test_pacing_zero_turns_it_off(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(ilert_rate_limit=0)
    rsps.post(ILERT, status=202)
    for n in range(1, 80):
        callout(app, n, "New")
    drain(app)
    assert len(sent(rsps)) == 79


def test_dead_letters_never_hold_secrets_even_from_autotask(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app(**AUTOTASK, enrich_attempts=1)
    rsps.get(f"{AT}/v1.0/Tickets/7865", status=401, json={"errors": ["bad AT-CODE-SECRET"]})
    rsps.post(ILERT, status=400, json={"status": 400, "message": "bad", "code": "BAD_REQUEST"})
    callout(app, 7865, "New")
    drain(app)
    text = json.dumps(get_bridge(app).store.dead_letters())
    for secret in ("at-SECRET-value-9", "AT-CODE-SECRET", INTEGRATION_KEY, TOKEN):
        assert secret not in text


def test_embedded_worker_delivers_and_never_keeps_the_process_alive(tmp_path: Any) -> None:
    """The embedded worker starts with the first request and delivers from the web process."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "embedded.py"
    script.write_text(
        "import time\n"
        "from flask import Flask\n"
        "from flask_autotask_ilert import AutotaskIlert\n"
        "from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator\n"
        "from flask_autotask_ilert.testing.servers import ServerThread\n"
        "state = IlertState()\n"
        "sim = ServerThread(create_ilert_simulator(state)).start()\n"
        "app = Flask('embedded')\n"
        "app.config.update(AUTOTASK_ILERT_CALLOUT_TOKEN='t' * 20, AUTOTASK_ILERT_ILERT_INTEGRATION_KEY='k',\n"
        "                  AUTOTASK_ILERT_ILERT_API_URL=sim.url, AUTOTASK_ILERT_EMBEDDED_WORKER=True,\n"
        "                  AUTOTASK_ILERT_WORKER_POLL_SECONDS=0.02, AUTOTASK_ILERT_REDIS_URL='memory://')\n"
        "AutotaskIlert(app)\n"
        "r = app.test_client().post('/autotask-ilert/callout/' + 't' * 20, data='id=3&status=New',\n"
        "                           content_type='application/x-www-form-urlencoded')\n"
        "deadline = time.time() + 10\n"
        "while not state.events() and time.time() < deadline:\n"
        "    time.sleep(0.02)\n"
        "print(r.status_code, [e.body['eventType'] for e in state.events()])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "202 ['ALERT']"
