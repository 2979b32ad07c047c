"""``flask autotask-ilert ...``: what an operator sees and the exit codes scripts rely on."""

from __future__ import annotations

import json

import pytest
import responses
from click.testing import Result
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

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, data_text, drain

ILERT = "http://ilert.invalid/api/events"
AT = "https://webservices5.autotask.net/atservicesrest"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
FORM = "application/x-www-form-urlencoded"
AUTOTASK = {
    "autotask_username": "api@example.com",
    "autotask_secret": "at-SECRET-value-9",
    "autotask_integration_code": "AT-CODE-SECRET",
    "autotask_api_url": AT,
}
SECRETS = (TOKEN, INTEGRATION_KEY, AUTOTASK["autotask_secret"], AUTOTASK["autotask_integration_code"])
COMMANDS = ("worker", "check", "status", "queue", "dead-letters", "replay", "forget", "simulate")


def cli(app: Flask, *args: str, input: str | None = None) -> Result:
    result = app.test_cli_runner().invoke(args=["autotask-ilert", *args], input=input)
    for secret in SECRETS:
        assert secret not in result.output, f"{secret!r} printed by {args}"
    return result


def post(app: Flask, ticket: int, status: str) -> int:
    response = app.test_client().post(CALLOUT, data=f"id={ticket}&status={status}", content_type=FORM)
    return int(response.status_code)


def kill(app: Flask, rsps: responses.RequestsMock, *tickets: int) -> None:
    """Dead-letter an alert create for each ticket (ilert refuses the key for good)."""
    rsps.post(ILERT, status=404, json={"code": "NO_ALERT_SOURCE_FOUND", "message": "unknown key"})
    for ticket in tickets:
        assert post(app, ticket, "New") == 202
    drain(app)
    rsps.remove(responses.POST, ILERT)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(make_app: AppFactory, command: str) -> None:
    result = cli(make_app(), command, "--help")
    assert result.exit_code == 0
    assert len(result.output.split("Options:")[0].strip().splitlines()) >= 3, result.output


# -- check ------------------------------------------------------------------------------------


def autotask_ok(rsps: responses.RequestsMock, used: int = 1200) -> None:
    rsps.get(f"{AT}/v1.0/ThresholdInformation",
             json={"externalRequestThreshold": 10000, "currentTimeframeRequestCount": used})
    fields = json.loads(data_text("autotask-ticket-fields.json"))
    fields["fields"].append({"name": "queueID", "isPickList": True, "picklistValues": [
        {"value": "29683354", "label": "Monitoring Alert", "isActive": True}]})
    rsps.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=fields)


def test_check_passes_and_changes_nothing(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(**AUTOTASK)
    rsps.post(ILERT, status=400, json={"code": "NO_OPEN_ALERT_WITH_KEY", "message": "no open alert"})
    autotask_ok(rsps)
    result = cli(app, "check")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("PASS  configuration")
    assert any(line.startswith("WARN  redis") for line in lines)  # the in-process store
    assert "source default" in lines
    assert any(line.startswith("  PASS  ilert") and "knows the integration key" in line for line in lines)
    assert any(line.startswith("  PASS  autotask zone") and AT in line for line in lines)
    assert any(line.startswith("  PASS  autotask credentials") and "12%" in line for line in lines)
    assert any(line.startswith("  PASS  autotask picklists") for line in lines)
    assert lines[-1].startswith("PASS")
    [sent] = [json.loads(c.request.body) for c in rsps.calls if c.request.url == ILERT]
    assert sent["eventType"] == "RESOLVE"
    assert sent["alertKey"].startswith("autotask-ilert-check-")


def test_check_fails_with_exit_1_and_says_why(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(**AUTOTASK)
    rsps.post(ILERT, status=404, json={"code": "NO_ALERT_SOURCE_FOUND", "message": "unknown key"})
    rsps.get(f"{AT}/v1.0/ThresholdInformation", status=401, json={"errors": ["bad"]})
    result = cli(app, "check")
    assert result.exit_code == 1
    assert "FAIL  ilert" in result.output and "does not know this integration key" in result.output
    assert "FAIL  autotask credentials" in result.output and "unauthorized" in result.output
    assert "autotask picklists" not in result.output  # no point asking after a 401
    assert result.output.splitlines()[-1].startswith("FAIL: 2 of")


def test_check_warns_when_the_budget_is_nearly_spent(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app(**AUTOTASK)
    rsps.post(ILERT, status=400, json={"code": "NO_OPEN_ALERT_WITH_KEY", "message": "no"})
    autotask_ok(rsps, used=9100)
    result = cli(app, "check")
    assert result.exit_code == 0
    assert "WARN  autotask credentials" in result.output and "91%" in result.output


def test_check_against_the_simulators(make_app: AppFactory) -> None:
    ilert = IlertState(integration_keys=[INTEGRATION_KEY])
    autotask = AutotaskState()
    with ServerThread(create_ilert_simulator(ilert)) as il, \
            ServerThread(create_autotask_simulator(autotask)) as at:
        app = make_app(
            ilert_api_url=il.url,
            autotask_username=DEFAULT_USER,
            autotask_secret=DEFAULT_SECRET,
            autotask_integration_code=DEFAULT_CODE,
            autotask_zone_lookup_url=f"{at.url}/atservicesrest",
            bidirectional=True,
            webhook_token="cli-webhook-token-0123456789",
        )
        result = cli(app, "check")
        assert result.exit_code == 0, result.output
        assert "discovered for the API user" in result.output
        assert "PASS  autotask sync" in result.output
        assert ilert.alerts() == []  # the check created no alert

        wrong = make_app(ilert_api_url=il.url, ilert_integration_key="il1api-not-a-known-key")
        result = cli(wrong, "check")
        assert result.exit_code == 1
        assert "FAIL  ilert" in result.output
        assert "il1api-not-a-known-key" not in result.output


def test_check_one_source(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(sources={"a": {"callout_token": "a" * 20, "ilert_integration_key": "k-a"},
                            "b": {"callout_token": "b" * 20, "ilert_integration_key": "k-b"}},
                   callout_token=None, ilert_integration_key=None)
    rsps.post(ILERT, status=400, json={"code": "NO_OPEN_ALERT_WITH_KEY", "message": "no"})
    result = cli(app, "check", "--source", "b")
    assert result.exit_code == 0
    assert "source b" in result.output and "source a" not in result.output
    assert "SKIP  autotask" in result.output
    assert cli(app, "check", "--source", "nope").exit_code == 2


# -- status, queue, forget ----------------------------------------------------------------------


def test_status_shows_state_queue_and_audit_trail(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=503)
    post(app, 7865, "New")
    drain(app)  # fails once: retried later (in 0.5 s at the earliest)
    clock.advance(0.1)
    post(app, 7865, "Complete")
    result = cli(app, "status", "7865")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ticket 7865 (source default)" in out
    assert "state        RESOLVED" in out
    assert "queue        2 event(s), next try in" in out
    assert "1. ilert create" in out and "1 failed attempt(s)" in out
    assert "2. ilert resolve" in out
    trail = out.split("audit trail")[1]
    assert trail.index("resolve PENDING>RESOLVED") < trail.index("ilert create failed (try 1)")
    assert trail.index("ilert create failed") < trail.index("create NONE>PENDING")

    as_json = json.loads(cli(app, "status", "7865", "--json").output)
    assert as_json[0]["state"] == "RESOLVED"
    assert [e["action"] for e in as_json[0]["queued"]] == ["create", "resolve"]


def test_status_explains_a_rejected_ticket_and_fails_for_an_unknown_one(make_app: AppFactory) -> None:
    app = make_app()
    assert post(app, 55, "Complete") == 400
    result = cli(app, "status", "55")
    assert result.exit_code == 0
    assert "state        NONE" in result.output and "callout CLOSED: reject NONE>NONE" in result.output
    unknown = cli(app, "status", "56")
    assert unknown.exit_code == 1
    assert "ticket 56: no record" in unknown.output


def test_queue_lists_the_oldest_tickets(make_app: AppFactory, clock: Clock) -> None:
    app = make_app()
    post(app, 1, "New")
    clock.advance(60)
    post(app, 2, "New")
    post(app, 2, "Complete")
    clock.advance(5)
    result = cli(app, "queue", "--limit", "1")
    assert result.exit_code == 0
    stats = json.loads(result.output)
    assert stats["tickets"] == 2 and stats["dead_letters"] == 0 and stats["workers"] == 0
    assert stats["oldest_event_age_s"] == 65.0
    assert stats["oldest"] == [{"source": "default", "ticket": 1, "events": 1, "head": "ilert create",
                                "attempts": 0, "age_s": 65.0, "due_in_s": 0.0}]
    assert len(json.loads(cli(app, "queue").output)["oldest"]) == 2


def test_forget_asks_first(make_app: AppFactory) -> None:
    app = make_app()
    post(app, 7865, "New")
    refused = cli(app, "forget", "7865", input="n\n")
    assert refused.exit_code == 1
    assert "state PENDING, 1 queued event(s)" in refused.output
    assert get_bridge(app).store.mapping("default", 7865) is not None

    agreed = cli(app, "forget", "7865", input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert "forgot ticket 7865 of source default" in agreed.output
    store = get_bridge(app).store
    assert store.mapping("default", 7865) is None and store.queued("default", 7865) == []
    assert store.queue_stats()["tickets"] == 0
    assert post(app, 7865, "New") == 202  # a new ticket as far as the bridge knows


def test_forget_with_yes_and_unknown_ticket(make_app: AppFactory) -> None:
    app = make_app()
    post(app, 9, "New")
    assert cli(app, "forget", "9", "--yes").exit_code == 0
    assert cli(app, "forget", "9", "--yes").exit_code == 1


# -- dead letters and replay -----------------------------------------------------------------


def test_dead_letters_are_listed(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app()
    kill(app, rsps, 101, 102, 103)
    result = cli(app, "dead-letters", "--limit", "2")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "3 dead letter(s); showing 2, oldest first:"
    assert "ticket 102  ilert create  http 404: NO_ALERT_SOURCE_FOUND" in lines[1]
    assert "ticket 103" in lines[2]
    only = cli(app, "dead-letters", "--ticket", "101", "--json")
    assert [r["event"]["ticket"] for r in json.loads(only.output)] == [101]
    assert cli(make_app(), "dead-letters").output.strip() == "no dead letters"


def test_replay_one_ticket_sends_it_again(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app()
    kill(app, rsps, 201, 202)
    result = cli(app, "replay", "201")
    assert result.exit_code == 0, result.output
    assert "replayed 1 event(s)" in result.output
    store = get_bridge(app).store
    assert [r["event"]["ticket"] for r in store.dead_letters()] == [202]
    [event] = store.queued("default", 201)
    assert event["attempts"] == 0 and event["replays"] == 1 and "body" not in event
    assert "replayed from the dead letters" in store.audit("default", 201)[0][1]

    rsps.post(ILERT, status=202, json={})
    assert drain(app) == 1
    sent = [json.loads(c.request.body) for c in rsps.calls if c.request.url == ILERT]
    assert sent[-1]["alertKey"] == "autotask-201" and sent[-1]["eventType"] == "ALERT"
    assert cli(app, "replay", "201").exit_code == 1  # nothing left for it


def test_replay_all_keeps_order_and_skips_what_the_ticket_moved_past(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app()
    kill(app, rsps, 301, 302, 303)
    rsps.post(ILERT, status=400, json={"code": "NO_OPEN_ALERT_WITH_KEY", "message": "none"})
    post(app, 302, "Complete")  # resolved meanwhile: its alert create must not come back
    drain(app)
    rsps.remove(responses.POST, ILERT)
    result = cli(app, "replay", "--all")
    assert result.exit_code == 0, result.output
    assert "replayed 2 event(s)" in result.output
    assert "kept dead: ticket 302 ilert create" in result.output
    store = get_bridge(app).store
    assert [r["event"]["ticket"] for r in store.dead_letters()] == [302]
    assert store.queue_stats()["tickets"] == 2

    forced = cli(app, "replay", "302", "--force")
    assert "replayed 1 event(s)" in forced.output
    assert store.dead_letters() == []


def test_replay_needs_a_ticket_or_all(make_app: AppFactory) -> None:
    app = make_app()
    assert cli(app, "replay").exit_code == 2
    assert cli(app, "replay", "5", "--all").exit_code == 2
    empty = cli(app, "replay", "--all")
    assert empty.exit_code == 0 and "no dead letters" in empty.output


# -- worker ---------------------------------------------------------------------------------


def test_worker_burst_delivers_what_is_due(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app()
    rsps.post(ILERT, status=202, json={})
    post(app, 1, "New")
    result = cli(app, "worker", "--burst")
    assert result.exit_code == 0
    assert "delivered or settled 1 queued item(s)" in result.output
    assert get_bridge(app).store.heartbeats() == []  # a burst is not a running worker


# -- simulate ---------------------------------------------------------------------------------


def test_simulate_against_the_running_bridge(make_app: AppFactory) -> None:
    app = make_app(callout_username="autotask", callout_password="callout-password-1")
    with ServerThread(app) as server:
        result = cli(app, "simulate", "--url", server.url)
        assert result.exit_code == 0, result.output
        assert f"POST {server.url}/autotask-ilert/callout/***" in result.output
        assert "-> 400 BAD REQUEST" in result.output and "X-Request-Id" in result.output
        assert "the bridge decided: reject" in result.output
        assert "callout-password-1" not in result.output
        assert get_bridge(app).store.mapping("default", 999_999_999) is None  # nothing paged


def test_simulate_webhook_and_failures(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app(bidirectional=True, webhook_token="sim-webhook-token-0123456789",
                   ticket_updater=lambda update: None)
    rsps.post("http://bridge.test/autotask-ilert/ilert/sim-webhook-token-0123456789",
              json={"ticket": 999999999, "action": "ignored", "state": None})
    result = cli(app, "simulate", "--url", "http://bridge.test/", "--webhook")
    assert result.exit_code == 0, result.output
    assert "POST http://bridge.test/autotask-ilert/ilert/***" in result.output
    assert "sim-webhook-token" not in result.output
    body = json.loads(rsps.calls[0].request.body)
    assert body["status"] == "ACCEPTED" and body["alertKey"] == "autotask-999999999"

    rsps.post(f"http://bridge.test/autotask-ilert/callout/{TOKEN}", status=404, body="Not Found")
    result = cli(app, "simulate", "--url", "http://bridge.test")
    assert result.exit_code == 1
    assert "did not take the sample" in result.output

    assert cli(app, "simulate", "--url", "ftp://bridge.test").exit_code == 2
    assert cli(make_app(), "simulate", "--url", "http://bridge.test", "--webhook").exit_code == 2


def test_simulate_reports_no_answer(make_app: AppFactory) -> None:
    result = cli(make_app(), "simulate", "--url", "http://127.0.0.1:1")
    assert result.exit_code == 1
    assert "no answer" in result.output
