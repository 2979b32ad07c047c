"""ilert -> Autotask: the webhook endpoint, the sync table row by row, and the ticket writes.

Autotask and ilert are faked at the HTTP adapter level (``responses``); the
clock is injected so retries and deferrals need no waiting.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import requests
import responses
from flask import Flask

from flask_autotask_ilert import signals
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.tickets import TicketUpdate, TicketUpdateError

from .conftest import TOKEN, AppFactory, Clock, data_text, drain

ILERT = "http://ilert.invalid/api/events"
AT = "https://webservices5.autotask.net/atservicesrest"
ZONE_LOOKUP = "https://zones.example.test/atservicesrest"
WEBHOOK_TOKEN = "webhook-token-0123456789abcdef"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
WEBHOOK = f"/autotask-ilert/ilert/{WEBHOOK_TOKEN}"
FIELDS = json.loads(data_text("autotask-ticket-fields.json"))
NOTE_FIELDS = {
    "fields": [
        {
            "name": "noteType",
            "isPickList": True,
            "picklistValues": [
                {"value": "1", "label": "General", "isActive": True, "isDefaultValue": True},
                {"value": "13", "label": "Workflow Rule Action", "isActive": True, "isDefaultValue": False},
            ],
        },
        {
            "name": "publish",
            "isPickList": True,
            "picklistValues": [
                {"value": "1", "label": "All Autotask Users", "isActive": True, "isDefaultValue": True},
                {"value": "2", "label": "Internal Only", "isActive": True, "isDefaultValue": False},
            ],
        },
    ]
}
SYNC = {
    "bidirectional": True,
    "webhook_token": WEBHOOK_TOKEN,
    "autotask_username": "api@example.com",
    "autotask_secret": "at-secret",
    "autotask_integration_code": "AT-CODE",
    "autotask_api_url": AT,
}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(ILERT, status=202, json={})
        mock.get(f"{AT}/v1.0/Tickets/entityInformation/fields", json=FIELDS)
        mock.get(f"{AT}/v1.0/TicketNotes/entityInformation/fields", json=NOTE_FIELDS)
        mock.get(
            f"{AT}/v1.0/ThresholdInformation",
            json={"externalRequestThreshold": 10000, "currentTimeframeRequestCount": 100},
        )
        mock.get(
            f"{AT}/v1.0/Tickets/7",
            json={"item": {"id": 7, "ticketNumber": "T7", "title": "Down", "priority": 1, "status": 1}},
        )
        yield mock


def callout(app: Flask, status: str, ticket: int = 7) -> Any:
    return app.test_client().post(
        CALLOUT, data=f"id={ticket}&status={status}", content_type="application/x-www-form-urlencoded"
    )


def webhook(
    app: Flask,
    status: str,
    key: str = "autotask-7",
    url: str = WEBHOOK,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    body = {
        "id": "2983781",
        "status": status,
        "alertKey": key,
        "eventType": "alert-acknowledged",
        "assignedTo": {"username": "jdoe", "firstName": "Jane", "lastName": "Doe"},
        **extra,
    }
    return app.test_client().post(url, json=body, headers=headers or {})


def at_calls(rsps: responses.RequestsMock, method: str, path: str) -> list[Any]:
    return [
        c for c in rsps.calls if c.request.method == method and c.request.url.split("?")[0].endswith(path)
    ]


def succeeded(call: Any) -> bool:
    return isinstance(call.response, requests.Response) and call.response.status_code == 200


def patches(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(c.request.body) for c in at_calls(rsps, "PATCH", "/v1.0/Tickets") if succeeded(c)]


def notes(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    return [
        json.loads(c.request.body) for c in at_calls(rsps, "POST", "/v1.0/Tickets/7/Notes") if succeeded(c)
    ]


def ilert_events(rsps: responses.RequestsMock) -> list[str]:
    return [json.loads(c.request.body)["eventType"] for c in rsps.calls if c.request.url == ILERT]


def writes_ok(rsps: responses.RequestsMock) -> None:
    rsps.patch(f"{AT}/v1.0/Tickets", json={"itemId": 7})
    rsps.post(f"{AT}/v1.0/Tickets/7/Notes", json={"itemId": 500})


@pytest.fixture
def app(make_app: AppFactory, rsps: responses.RequestsMock) -> Flask:
    application = make_app(**SYNC)
    assert callout(application, "New").status_code == 202
    drain(application)
    writes_ok(rsps)
    return application


# -- the table, row by row -------------------------------------------------------------------------


def test_accepted_moves_a_new_ticket_to_in_progress_with_a_note(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    response = webhook(app, "ACCEPTED")
    assert response.status_code == 202
    assert response.json == {"ticket": 7, "action": "accept-ticket", "state": "ACCEPTED"}
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 8}]
    [note] = notes(rsps)
    assert "accepted in ilert by Jane Doe (jdoe)" in note["description"]
    assert note["noteType"] == 1 and note["publish"] == 1  # the tenant's defaults
    mapping = get_bridge(app).store.mapping("default", 7)
    assert mapping is not None and mapping.state.value == "ACCEPTED"


def test_accepted_leaves_a_ticket_that_is_not_new_alone_but_notes_it(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app(**SYNC)
    callout(app, "New")
    callout(app, "Customer+Note+Added")  # OTHER: the alert stays PENDING, the class is now OTHER
    drain(app)
    writes_ok(rsps)
    assert webhook(app, "ACCEPTED").status_code == 202
    drain(app)
    assert patches(rsps) == []
    assert len(notes(rsps)) == 1


def test_resolved_from_pending_completes_the_ticket(app: Flask, rsps: responses.RequestsMock) -> None:
    response = webhook(app, "RESOLVED")
    assert response.status_code == 202 and response.json["action"] == "resolve-ticket"
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 5}]
    assert "resolved in ilert by Jane Doe (jdoe)" in notes(rsps)[0]["description"]
    mapping = get_bridge(app).store.mapping("default", 7)
    assert mapping is not None and mapping.state.value == "RESOLVED" and mapping.ttl_ms


def test_resolved_from_accepted_completes_the_ticket(app: Flask, rsps: responses.RequestsMock) -> None:
    callout(app, "In+Progress")
    drain(app)
    assert webhook(app, "RESOLVED").status_code == 202
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 5}]
    assert len(notes(rsps)) == 1


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        (["ACCEPTED"], "ACCEPTED"),  # the same state already
        (["RESOLVED"], "RESOLVED"),
        (["RESOLVED"], "ACCEPTED"),  # stale: resolved already
        ([], "PENDING"),
        (["ACCEPTED"], "PENDING"),
    ],
)
def test_repeated_stale_and_pending_webhooks_change_nothing_and_call_nothing(
    app: Flask, rsps: responses.RequestsMock, setup: list[str], status: str
) -> None:
    for earlier in setup:
        webhook(app, earlier)
    drain(app)
    before = len(rsps.calls)
    response = webhook(app, status)
    assert response.status_code == 200 and response.json["action"] == "nothing"
    drain(app)
    assert len(rsps.calls) == before


def test_webhooks_fired_twice_write_once(app: Flask, rsps: responses.RequestsMock) -> None:
    codes = [webhook(app, "ACCEPTED").status_code for _ in range(3)]
    assert codes == [202, 200, 200]
    drain(app)
    assert len(patches(rsps)) == 1 and len(notes(rsps)) == 1


@pytest.mark.parametrize("key", ["autotask-999", "someone-else-7", "", None])
def test_alerts_that_are_not_ours_are_ignored_and_counted(app: Flask, key: str | None) -> None:
    body = {"id": 1, "status": "ACCEPTED"}
    if key is not None:
        body["alertKey"] = key
    response = app.test_client().post(WEBHOOK, json=body)
    assert response.status_code == 200 and response.json["action"] == "ignored"
    assert get_bridge(app).store.counters()["webhooks_not_ours"] == 1
    assert get_bridge(app).store.queue_stats()["tickets"] == 0


# -- no loops ------------------------------------------------------------------------------------------


def test_the_echo_of_our_own_ticket_edit_is_a_no_op(app: Flask, rsps: responses.RequestsMock) -> None:
    webhook(app, "ACCEPTED")
    drain(app)
    before = ilert_events(rsps)
    echo = callout(app, "In+Progress")  # Autotask's callout for the bridge's own PATCH
    assert echo.status_code == 200 and echo.json["action"] == "nothing"
    drain(app)
    assert ilert_events(rsps) == before


def test_the_webhook_for_our_own_event_is_a_no_op(app: Flask, rsps: responses.RequestsMock) -> None:
    callout(app, "In+Progress")  # a person in Autotask: the bridge sends ACCEPT to ilert
    drain(app)
    echo = webhook(app, "ACCEPTED")  # ilert's webhook for that ACCEPT
    assert echo.status_code == 200 and echo.json["action"] == "nothing"
    callout(app, "Complete")
    drain(app)
    assert webhook(app, "RESOLVED").json["action"] == "nothing"
    drain(app)
    assert patches(rsps) == [] and notes(rsps) == []


# -- input and authentication --------------------------------------------------------------------------


def test_the_custom_template_body_is_accepted(app: Flask, rsps: responses.RequestsMock) -> None:
    body = {
        "alertId": 55,
        "alertKey": "AUTOTASK-7 ",
        "alertStatus": "accepted",
        "eventType": "incident-acknowledged",
        "alertUrl": "https://x.ilert.com/alerts/55",
    }
    response = app.test_client().post(WEBHOOK, json=body)
    assert response.status_code == 202
    drain(app)
    assert "Alert 55 accepted in ilert by someone in ilert" in notes(rsps)[0]["description"]


def test_the_sample_bodies_are_accepted(app: Flask) -> None:
    accepted = json.loads(data_text("ilert-webhook-accepted.json"))
    resolved = json.loads(data_text("ilert-webhook-resolved.json"))  # numeric id, incident-* name
    for body in (accepted, resolved):
        body["alertKey"] = "autotask-7"
        assert app.test_client().post(WEBHOOK, json=body).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {"status": "SNOOZED", "alertKey": "autotask-7"},
        {"alertKey": "autotask-7"},
        {"status": 3, "alertKey": "autotask-7"},
        {"status": "ACCEPTED", "id": {"x": 1}},
        {"status": "ACCEPTED", "alertKey": "k" * 300},
        [1, 2],
    ],
)
def test_invalid_webhooks_are_400(app: Flask, body: Any) -> None:
    response = app.test_client().post(WEBHOOK, json=body)
    assert response.status_code == 400 and response.json["code"] == "invalid_payload"
    mapping = get_bridge(app).store.mapping("default", 7)
    assert mapping is not None and mapping.state.value == "PENDING"


def test_webhook_must_be_json(app: Flask) -> None:
    response = app.test_client().post(
        WEBHOOK, data="status=ACCEPTED", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


def test_unknown_webhook_token_is_an_ordinary_404(app: Flask) -> None:
    wrong = webhook(app, "ACCEPTED", url="/autotask-ilert/ilert/wrong-token-0123456789")
    assert wrong.status_code == 404
    assert wrong.data == app.test_client().get("/nowhere").data


def test_callout_token_does_not_open_the_webhook(app: Flask) -> None:
    assert webhook(app, "ACCEPTED", url=f"/autotask-ilert/ilert/{TOKEN}").status_code == 404


def test_webhook_endpoint_is_closed_without_bidirectional(make_app: AppFactory) -> None:
    app = make_app()
    assert webhook(app, "ACCEPTED").status_code == 404


def test_static_header_instead_of_a_token(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    config = {
        **SYNC,
        "webhook_token": None,
        "webhook_header_name": "X-Ilert-Secret",
        "webhook_header_value": "header-secret-value",
    }
    app = make_app(**config)
    callout(app, "New")
    url = "/autotask-ilert/ilert"
    assert webhook(app, "ACCEPTED", url=url).status_code == 401
    assert webhook(app, "ACCEPTED", url=url, headers={"X-Ilert-Secret": "nope"}).status_code == 401
    ok = webhook(app, "ACCEPTED", url=url, headers={"X-Ilert-Secret": "header-secret-value"})
    assert ok.status_code == 202


def test_token_and_basic_credentials_together(make_app: AppFactory) -> None:
    app = make_app(**SYNC, webhook_username="ilert", webhook_password="basic-secret-password")
    callout(app, "New")
    creds = base64.b64encode(b"ilert:basic-secret-password").decode()
    assert webhook(app, "ACCEPTED").status_code == 401
    assert webhook(app, "ACCEPTED", headers={"Authorization": f"Basic {creds}"}).status_code == 202
    assert (
        webhook(
            app, "RESOLVED", url="/autotask-ilert/ilert", headers={"Authorization": f"Basic {creds}"}
        ).status_code
        == 202
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {
                "bidirectional": True,
                "autotask_username": "u",
                "autotask_secret": "s",
                "autotask_integration_code": "c",
            },
            "needs a way to recognise",
        ),
        ({"bidirectional": True, "webhook_token": WEBHOOK_TOKEN}, "writes to Autotask"),
        ({**SYNC, "accept_note": "by {whom}"}, "ACCEPT_NOTE"),
        ({**SYNC, "webhook_token": TOKEN}, "share a token"),
        ({**SYNC, "ticket_updater": "no.such.module:thing"}, "cannot import"),
    ],
)
def test_invalid_sync_config_fails_at_init_app(
    make_app: AppFactory, config: dict[str, Any], message: str
) -> None:
    from flask_autotask_ilert import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        make_app(**config)


# -- Autotask's limits and failures -------------------------------------------------------------------


def test_thread_threshold_exceeded_is_retried(app: Flask, rsps: responses.RequestsMock, clock: Clock) -> None:
    rsps.replace(
        responses.PATCH, f"{AT}/v1.0/Tickets", status=500, json={"errors": ["Thread Threshold Exceeded"]}
    )
    rsps.add(responses.PATCH, f"{AT}/v1.0/Tickets", json={"itemId": 7})
    webhook(app, "ACCEPTED")
    drain(app)
    assert patches(rsps) == []
    clock.advance(30)
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 8}]
    assert len(notes(rsps)) == 1


def test_a_long_outage_lands_the_write_once(app: Flask, rsps: responses.RequestsMock, clock: Clock) -> None:
    rsps.replace(responses.PATCH, f"{AT}/v1.0/Tickets", body=requests.exceptions.ConnectionError("down"))
    webhook(app, "RESOLVED")
    for _ in range(8):
        drain(app)
        clock.advance(400)
    assert patches(rsps) == []
    rsps.replace(responses.PATCH, f"{AT}/v1.0/Tickets", json={"itemId": 7})
    for _ in range(3):
        drain(app)
        clock.advance(400)
    assert patches(rsps) == [{"id": 7, "status": 5}]
    assert len(notes(rsps)) == 1
    assert get_bridge(app).store.queue_stats()["tickets"] == 0


def test_a_failed_note_does_not_repeat_the_patch(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    rsps.replace(responses.POST, f"{AT}/v1.0/Tickets/7/Notes", status=503)
    webhook(app, "ACCEPTED")
    drain(app)
    rsps.replace(responses.POST, f"{AT}/v1.0/Tickets/7/Notes", json={"itemId": 9})
    clock.advance(30)
    drain(app)
    assert len(at_calls(rsps, "PATCH", "/v1.0/Tickets")) == 1
    assert len(notes(rsps)) == 1


def test_401_rediscovers_the_zone_once(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    config = {**SYNC, "autotask_api_url": None, "autotask_zone_lookup_url": ZONE_LOOKUP}
    app = make_app(
        **{k: v for k, v in config.items() if k != "autotask_zone_lookup_url"},
        autotask_zone_lookup_url=ZONE_LOOKUP,
        autotask_allowed_hosts=["autotask.net", "example.test"],
    )
    rsps.get(f"{ZONE_LOOKUP}/v1.0/zoneInformation", json={"url": AT, "webUrl": "https://ww5.autotask.net"})
    callout(app, "New")
    drain(app)
    rsps.add(responses.PATCH, f"{AT}/v1.0/Tickets", status=401)
    rsps.add(responses.PATCH, f"{AT}/v1.0/Tickets", json={"itemId": 7})
    writes_ok(rsps)
    webhook(app, "ACCEPTED")
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 8}]
    assert len(at_calls(rsps, "GET", "/v1.0/zoneInformation")) == 2


def test_writes_wait_while_the_tenant_budget_is_spent(
    app: Flask, rsps: responses.RequestsMock, clock: Clock
) -> None:
    rsps.replace(
        responses.GET,
        f"{AT}/v1.0/ThresholdInformation",
        json={"externalRequestThreshold": 10000, "currentTimeframeRequestCount": 9000},
    )
    webhook(app, "ACCEPTED")
    drain(app)
    assert patches(rsps) == []
    clock.advance(61)
    drain(app)
    assert patches(rsps) == []  # the reading is trusted for 5 minutes: no extra check either
    assert len(at_calls(rsps, "GET", "/v1.0/ThresholdInformation")) == 1
    rsps.replace(
        responses.GET,
        f"{AT}/v1.0/ThresholdInformation",
        json={"externalRequestThreshold": 10000, "currentTimeframeRequestCount": 10},
    )
    clock.advance(300)
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 8}]


def test_writes_wait_for_a_free_request_place(app: Flask, rsps: responses.RequestsMock, clock: Clock) -> None:
    bridge = get_bridge(app)
    client = bridge.autotask(bridge.settings.sources["default"])
    assert client is not None
    name = f"{client.integration_code_digest}:Tickets"
    for n in range(3):  # three requests in flight elsewhere
        assert bridge.store.try_acquire(name, 3, 60_000, f"other-{n}")
    webhook(app, "ACCEPTED")
    drain(app)
    assert patches(rsps) == []
    bridge.store.release(name, "other-0")
    clock.advance(1)
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 8}]


# -- the outbound sync hook ---------------------------------------------------------------------------


class Mirror:
    """A host app's updater: mirrors status into its own store instead of Autotask."""

    seen: ClassVar[list[TicketUpdate]] = []

    def __call__(self, update: TicketUpdate) -> None:
        Mirror.seen.append(update)


def test_a_ticket_updater_replaces_the_autotask_write(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    Mirror.seen = []
    app = make_app(**SYNC, ticket_updater=f"{__name__}:Mirror")
    callout(app, "New")
    drain(app)
    before = [c for c in rsps.calls if c.request.url.startswith(AT)]
    webhook(app, "ACCEPTED")
    drain(app)
    [update] = Mirror.seen
    assert (update.ticket_id, update.action, update.status_label) == (7, "accept-ticket", "In Progress")
    assert update.by == "Jane Doe (jdoe)"
    assert [c for c in rsps.calls if c.request.url.startswith(AT)] == before


def test_a_failing_updater_is_retried_or_dead_lettered(
    make_app: AppFactory, clock: Clock, rsps: responses.RequestsMock
) -> None:
    calls: list[int] = []

    def flaky(update: TicketUpdate) -> None:
        calls.append(update.ticket_id)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        raise TicketUpdateError("ticket archived", retryable=False)

    app = make_app(**SYNC, ticket_updater=flaky)
    callout(app, "New")
    drain(app)
    webhook(app, "ACCEPTED")
    drain(app)
    clock.advance(30)
    drain(app)
    assert calls == [7, 7]
    [dead] = get_bridge(app).store.dead_letters()
    assert dead["reason"] == "ticket archived" and dead["event"]["target"] == "ticket"


def test_signals_carry_plain_data(app: Flask, rsps: responses.RequestsMock) -> None:
    heard: list[tuple[str, dict[str, Any]]] = []

    def listen(name: str) -> Any:
        def receiver(sender: Any, **data: Any) -> None:
            assert sender is app
            heard.append((name, data))

        return receiver

    receivers = {
        name: listen(name)
        for name in ("alert_scheduled", "callout_rejected", "event_delivered", "ticket_updated")
    }
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver, sender=app)
    rsps.get(f"{AT}/v1.0/Tickets/8", json={"item": None})
    try:
        callout(app, "New", ticket=8)
        callout(app, "Complete", ticket=9)
        webhook(app, "ACCEPTED")
        drain(app)
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver, sender=app)
    names = [n for n, _ in heard]
    assert names.count("alert_scheduled") == 1 and names.count("callout_rejected") == 1
    assert (
        "ticket_updated",
        {
            "source": "default",
            "ticket": 7,
            "action": "accept-ticket",
            "status_label": "In Progress",
            "by": "Jane Doe (jdoe)",
        },
    ) in heard
    delivered = [d for n, d in heard if n == "event_delivered"]
    assert {(d["target"], d["action"]) for d in delivered} == {
        ("ilert", "create"),
        ("ticket", "accept-ticket"),
    }
    for _, data in heard:
        assert all(isinstance(v, str | int | type(None)) for v in data.values())


def test_a_failing_receiver_never_breaks_the_bridge(app: Flask) -> None:
    def broken(sender: Any, **data: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.alert_scheduled.connect(broken, sender=app)
    try:
        assert callout(app, "New", ticket=11).status_code == 202
    finally:
        signals.alert_scheduled.disconnect(broken, sender=app)


def test_delivery_failed_signal(make_app: AppFactory, rsps: responses.RequestsMock) -> None:
    app = make_app()
    rsps.replace(responses.POST, ILERT, status=404, json={"code": "NO_ALERT_SOURCE_FOUND"})
    failed: list[dict[str, Any]] = []

    def receiver(sender: Any, **data: Any) -> None:
        failed.append(data)

    signals.delivery_failed.connect(receiver)
    try:
        callout(app, "New")
        drain(app)
    finally:
        signals.delivery_failed.disconnect(receiver)
    assert [(f["ticket"], f["status"]) for f in failed] == [(7, 404)]


def test_a_ticket_completed_meanwhile_is_not_reopened(app: Flask, rsps: responses.RequestsMock) -> None:
    assert webhook(app, "ACCEPTED").status_code == 202  # queued: In Progress + note
    callout(app, "Complete")  # before the worker gets to it, someone completes the ticket
    rsps.replace(responses.GET, f"{AT}/v1.0/Tickets/7", json={"item": {"id": 7, "status": 5}})
    drain(app)
    assert patches(rsps) == []  # never put back to In Progress
    assert len(notes(rsps)) == 1  # the accept is still recorded
    assert ilert_events(rsps)[-1] == "RESOLVE"


def test_status_change_still_wanted_rules() -> None:
    from flask_autotask_ilert.lifecycle import StatusClass, SyncAction, status_change_still_wanted

    accept, resolve = SyncAction.ACCEPT_TICKET, SyncAction.RESOLVE_TICKET
    assert status_change_still_wanted(accept, StatusClass.NEW)
    assert not status_change_still_wanted(accept, StatusClass.CLOSED)
    assert not status_change_still_wanted(accept, StatusClass.IN_PROGRESS)
    assert status_change_still_wanted(resolve, StatusClass.IN_PROGRESS)
    assert not status_change_still_wanted(resolve, StatusClass.CLOSED)


def test_accept_then_resolve_in_ilert_writes_both_even_when_the_worker_is_behind(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    webhook(app, "ACCEPTED")
    webhook(app, "RESOLVED")
    drain(app)
    assert patches(rsps) == [{"id": 7, "status": 8}, {"id": 7, "status": 5}]
    assert len(notes(rsps)) == 2


# -- a reopened ticket's alerts are told apart (generations) -----------------------------------


def sent(rsps: responses.RequestsMock) -> list[tuple[str, str]]:
    """(eventType, alertKey) of every event sent to ilert, in order."""
    bodies = [json.loads(c.request.body) for c in rsps.calls if c.request.url == ILERT]
    return [(b["eventType"], b["alertKey"]) for b in bodies]


@pytest.fixture(params=["fakeredis", "redis"])
def reopened(
    request: pytest.FixtureRequest, make_app: AppFactory, rsps: responses.RequestsMock
) -> Flask:
    """Ticket 7 paged, completed in Autotask, then set back to New: its second alert is open."""
    application = make_app(**SYNC, realert_on_reopen=True, real_redis=request.param == "redis")
    writes_ok(rsps)
    for status in ("New", "Complete", "New"):
        assert callout(application, status).status_code == 202
        drain(application)
    assert sent(rsps) == [("ALERT", "autotask-7"), ("RESOLVE", "autotask-7"), ("ALERT", "autotask-7-2")]
    return application


@pytest.mark.parametrize("status", ["RESOLVED", "ACCEPTED"])
def test_a_late_webhook_of_the_first_alert_leaves_the_reopened_ticket_alone(
    reopened: Flask, rsps: responses.RequestsMock, status: str
) -> None:
    store = get_bridge(reopened).store
    response = webhook(reopened, status, key="autotask-7")
    assert response.status_code == 200
    assert response.json == {"ticket": 7, "action": "ignored", "state": "PENDING"}
    drain(reopened)
    assert patches(rsps) == [] and notes(rsps) == []  # the reopened ticket is not completed
    mapping = store.mapping("default", 7)
    assert mapping is not None and (mapping.state.value, mapping.generation) == ("PENDING", 2)
    assert store.counters()["webhooks_superseded"] == 1
    assert store.audit("default", 7)[0][1] == "webhook about an older alert: ignored, PENDING kept"


def test_the_current_alerts_webhook_still_writes_the_ticket(
    reopened: Flask, rsps: responses.RequestsMock
) -> None:
    webhook(reopened, "RESOLVED", key="autotask-7")  # the old one first: ignored
    response = webhook(reopened, "RESOLVED", key="  AUTOTASK-7-2 ")  # ilert trims and folds keys
    assert response.status_code == 202 and response.json["action"] == "resolve-ticket"
    drain(reopened)
    assert patches(rsps) == [{"id": 7, "status": 5}]
    mapping = get_bridge(reopened).store.mapping("default", 7)
    assert mapping is not None and (mapping.state.value, mapping.generation) == ("RESOLVED", 2)


def test_each_reopen_makes_the_next_generation(reopened: Flask, rsps: responses.RequestsMock) -> None:
    for status in ("In+Progress", "Complete", "New"):
        callout(reopened, status)
        drain(reopened)
    assert sent(rsps)[3:] == [
        ("ACCEPT", "autotask-7-2"), ("RESOLVE", "autotask-7-2"), ("ALERT", "autotask-7-3")]
    for old in ("autotask-7", "autotask-7-2", "autotask-7-4"):  # older ones, and one never made
        assert webhook(reopened, "RESOLVED", key=old).json["action"] == "ignored"
    drain(reopened)
    assert patches(rsps) == []
    assert webhook(reopened, "ACCEPTED", key="autotask-7-3").status_code == 202


def test_the_old_alerts_webhook_before_the_reopen_changes_nothing_either(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    """The other order: ilert's RESOLVED (the echo of the bridge's own RESOLVE) comes first."""
    app = make_app(**SYNC, realert_on_reopen=True)
    writes_ok(rsps)
    for status in ("New", "Complete"):
        callout(app, status)
        drain(app)
    assert webhook(app, "RESOLVED", key="autotask-7").json["action"] == "nothing"
    assert callout(app, "New").status_code == 202
    drain(app)
    assert webhook(app, "RESOLVED", key="autotask-7").json["action"] == "ignored"
    drain(app)
    assert patches(rsps) == []
    assert sent(rsps)[-1] == ("ALERT", "autotask-7-2")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("autotask-7", (7, 1)),
        ("autotask-7-2", (7, 2)),
        (" AutoTask-123-15 ", (123, 15)),
        ("autotask-7-0", None),
        ("autotask-7-", None),
        ("autotask-7-2-3", None),
        ("autotask-ilert-check-abc", None),
        (None, None),
    ],
)
def test_alert_keys_name_the_ticket_and_the_generation(
    key: str | None, expected: tuple[int, int] | None
) -> None:
    from flask_autotask_ilert.alerts import alert_key
    from flask_autotask_ilert.sync import alert_of, ticket_of

    assert alert_of(key) == expected
    assert ticket_of(key) == (expected[0] if expected else None)
    if expected:
        assert alert_of(alert_key(*expected)) == expected


def test_a_write_for_the_first_alert_leaves_a_ticket_reopened_meanwhile_as_it_is(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    """The old alert's RESOLVED acted, and a reopen came before its ticket write went out."""
    app = make_app(**SYNC, realert_on_reopen=True)
    writes_ok(rsps)
    callout(app, "New")
    drain(app)
    assert webhook(app, "RESOLVED", key="autotask-7").status_code == 202  # queued, not written yet
    assert callout(app, "New").json["action"] == "create"  # Autotask says: open again
    drain(app)
    assert patches(rsps) == []  # the reopened ticket is not completed for the first alert
    assert "resolved in ilert by Jane Doe (jdoe)" in notes(rsps)[0]["description"]  # but noted
    assert sent(rsps) == [("ALERT", "autotask-7"), ("ALERT", "autotask-7-2")]
