"""Autotask REST webhooks (TicketWebhooks) as a second way in: signatures, dedupe, the lifecycle.

The Autotask simulator plays the tenant over a real socket: it keeps the
TicketWebhook, signs each delivery as Autotask does (its own .NET escaping, apart
from the bridge's) and delivers it to the bridge, itself served on a real socket,
with a real Redis behind it so that "nothing recorded" can be checked key by key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask, request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import flask_autotask_ilert.signals as signals
from flask_autotask_ilert.errors import ConfigurationError, StoreUnavailable
from flask_autotask_ilert.schemas import load_autotask_webhook
from flask_autotask_ilert.testing.autotask_sim import (
    DEFAULT_CODE,
    DEFAULT_SECRET,
    DEFAULT_USER,
    WEBHOOK_FIELD_IDS,
    AutotaskState,
    WebhookDelivery,
    create_autotask_simulator,
    dotnet_json,
    hook_signature,
)
from flask_autotask_ilert.testing.ilert_sim import IlertState, create_ilert_simulator
from flask_autotask_ilert.testing.servers import ServerThread

from .conftest import INTEGRATION_KEY, TOKEN, AppFactory, Clock, drain

SECRET = "hook-secret-Zq8w1e9r7t6y5u4i"
PREFIX = "/autotask-ilert"
HOOK = f"{PREFIX}/autotask-webhook/{TOKEN}"
#: A title that .NET escapes in every way: HTML-sensitive characters, a quote, non-ASCII, an emoji.
TITLE = "Disk <full> & 'db01' \"quoted\" +1 `x` — Störung 😀"


@dataclass
class Tenant:
    state: AutotaskState
    server: ServerThread

    @property
    def api_url(self) -> str:
        return f"{self.server.url}/atservicesrest"


@pytest.fixture(autouse=True)
def _now(clock: Clock) -> None:
    """The bridge's clock at the real time: the simulator stamps its events with it."""
    clock.now = time.time()


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    state = AutotaskState()
    state.webhooks.configure({"retry_delay": 0, "max_attempts": 1, "timeout": 5})
    server = ServerThread(create_autotask_simulator(state)).start()
    yield Tenant(state, server)
    server.stop()


@pytest.fixture
def ilert() -> Iterator[tuple[IlertState, ServerThread]]:
    state = IlertState(integration_keys=[INTEGRATION_KEY])
    server = ServerThread(create_ilert_simulator(state)).start()
    yield state, server
    server.stop()


def bridge(make_app: AppFactory, tenant: Tenant, **config: Any) -> Flask:
    settings: dict[str, Any] = {
        "real_redis": True, "autotask_username": DEFAULT_USER, "autotask_secret": DEFAULT_SECRET,
        "autotask_integration_code": DEFAULT_CODE, "autotask_api_url": tenant.api_url,
        "autotask_webhook_secret": SECRET,
    }
    settings.update(config)
    return make_app(**settings)


@pytest.fixture
def served(make_app: AppFactory, tenant: Tenant) -> Iterator[tuple[Flask, str]]:
    """The bridge on a real socket, and the URL a TicketWebhook delivers to."""
    app = bridge(make_app, tenant)
    server = ServerThread(app).start()
    yield app, f"{server.url}{HOOK}"
    server.stop()


def install(tenant: Tenant, url: str, secret: str = SECRET, *, title: bool = True) -> int:
    """A TicketWebhook as `webhook install` makes it (plus the title, to exercise the escaping)."""
    hooks = tenant.state.webhooks
    webhook_id = hooks.create({
        "name": "test", "webhookUrl": url, "deactivationUrl": url, "secretKey": secret,
        "isSubscribedToCreateEvents": True, "isSubscribedToUpdateEvents": True,
    })
    fields = [("status", True, True), ("priority", True, False), ("ticketNumber", False, True)]
    if title:
        fields.append(("title", False, True))
    for name, subscribed, always in fields:
        hooks.add_field(webhook_id, {"fieldID": WEBHOOK_FIELD_IDS[name], "isSubscribedField": subscribed,
                                     "isDisplayAlwaysField": always})
    return webhook_id


def keys(app: Flask) -> list[str]:
    """Every Redis key this app wrote (its own prefix only), but the flood guard's request counts."""
    bridge_ = app.extensions["autotask_ilert"]
    client = redis.Redis.from_url(bridge_.settings.redis_url, decode_responses=True)
    found = client.scan_iter(match=f"{bridge_.settings.redis_prefix}*", count=1000)
    return sorted(k for k in found if not k.startswith(f"{bridge_.settings.redis_prefix}limits:"))


def record(app: Flask, ticket: int) -> str | None:
    mapping = app.extensions["autotask_ilert"].store.mapping("default", ticket)
    return None if mapping is None else str(mapping.state.value)


def queued(app: Flask, ticket: int) -> list[str]:
    return [e["action"] for e in app.extensions["autotask_ilert"].store.queued("default", ticket)]


def last(tenant: Tenant, count: int = 1) -> list[WebhookDelivery]:
    return tenant.state.webhooks.wait_for_deliveries(count)[-count:]


def signed_post(app: Flask, payload: Any, secret: str = SECRET, **headers: str) -> Any:
    body = json.dumps(payload).encode()
    sent = {"X-Hook-Signature": hook_signature(secret, body), **headers}
    return app.test_client().post(HOOK, data=body, headers=sent, content_type="application/json")


def delivery(ticket: int, status: Any, sequence: int = 1, **extra: Any) -> dict[str, Any]:
    return {"Action": "Update", "Guid": "7f0c1b2a-1111-4c0b-8f5e-2f1f7d6b0c11", "EntityType": "Ticket",
            "Id": ticket, "Fields": {"status": status, "ticketNumber": "T20261130.0001"},
            "EventTime": "2026-11-30T10:00:00Z", "SequenceNumber": sequence, "PersonID": 30691780,
            **extra}


# -- the signature -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["escaped-compact", "escaped-raw", "raw"])
def test_each_form_of_the_signature_is_accepted(
    served: tuple[Flask, str], tenant: Tenant, form: str
) -> None:
    app, url = served
    install(tenant, url)
    # Spaces in the sent body make all three signed texts differ from one another.
    tenant.state.webhooks.configure({"signing": form, "spaced": True})
    ticket = tenant.state.add_ticket(TITLE, status_label="New")
    (sent,) = last(tenant)
    payload = json.loads(sent.body)
    assert payload["Fields"]["title"] == TITLE
    texts = {sent.body, dotnet_json(payload, (", ", ": ")).encode(), dotnet_json(payload).encode()}
    assert len(texts) == 3, "the forms must differ for this test to tell them apart"
    assert sent.attempts == [202]
    assert record(app, ticket["id"]) == "PENDING" and queued(app, ticket["id"]) == ["create"]


@pytest.mark.parametrize("how", ["missing", "wrong secret", "body changed"])
def test_a_bad_or_missing_signature_is_refused_and_nothing_is_recorded(
    served: tuple[Flask, str], tenant: Tenant, how: str
) -> None:
    app, url = served
    hooks = tenant.state.webhooks
    hooks.configure({"signing": "none" if how == "missing" else "escaped-compact", "max_attempts": 2})
    # "body changed": the genuine delivery goes nowhere; a changed copy, same signature, comes here.
    target = "http://127.0.0.1:9/nowhere" if how == "body changed" else url
    install(tenant, target, secret="some-other-secret-0000" if how == "wrong secret" else SECRET)
    ticket = tenant.state.add_ticket("Printer on fire", status_label="New")
    (sent,) = last(tenant)
    if how == "body changed":
        assert sent.attempts == [None, None]
        changed = dataclasses.replace(sent, url=url, body=sent.body.replace(b'"status":1', b'"status":8'),
                                      attempts=[])
        assert changed.body != sent.body and changed.signature == sent.signature
        assert hooks.post(changed) == 401
        assert hooks.post(dataclasses.replace(sent, url=url)) == 202  # the genuine one is fine
        tenant.state.webhooks.configure({"signing": "none"})
        return
    assert sent.attempts == [401, 401]  # Autotask tries again; it is refused again
    assert record(app, ticket["id"]) is None
    assert keys(app) == []


def test_the_401_is_problem_details_and_says_what_is_wrong(served: tuple[Flask, str]) -> None:
    app, _ = served
    answer = app.test_client().post(HOOK, json=delivery(5, 1))
    assert answer.status_code == 401
    assert answer.json["code"] == "unauthorized" and "X-Hook-Signature" in answer.json["message"]
    assert keys(app) == []


# -- dedupe, fields, statuses ----------------------------------------------------------------------


def test_a_repeated_delivery_is_answered_2xx_and_applied_once(
    served: tuple[Flask, str], tenant: Tenant
) -> None:
    app, url = served
    install(tenant, url)
    ticket = tenant.state.add_ticket("Server down", status_label="New")
    (first,) = last(tenant)
    tenant.state.set_status(ticket["id"], "Complete")
    last(tenant, 2)
    assert queued(app, ticket["id"]) == ["create", "resolve"]
    assert tenant.state.webhooks.redeliver(first.sequence) == 200
    assert tenant.state.webhooks.redeliver(first.sequence + 1) == 200
    answer = signed_post(app, json.loads(first.body))
    assert answer.status_code == 200 and answer.json["action"] == "duplicate"
    assert queued(app, ticket["id"]) == ["create", "resolve"]
    # Another webhook (Guid) with the same sequence number is another delivery: not a
    # duplicate, but older than what the ticket's record holds.
    other = signed_post(app, {**json.loads(first.body), "Guid": "0e3c9d7a-2222-4b1c-9a8d-000000000001"})
    assert other.status_code == 200 and other.json["action"] == "stale"


def test_fields_and_keys_are_read_in_any_case(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    created = signed_post(app, {"action": "create", "guid": "ab-12", "id": 77, "sequenceNumber": 1,
                                "FIELDS": {"Status": "1", "TicketNumber": "T1"}})
    assert created.status_code == 202 and created.json == {"ticket": 77, "action": "create",
                                                           "state": "PENDING"}
    closed = signed_post(app, delivery(77, None, 2, Fields={"STATUS": 5}))
    assert closed.status_code == 202 and closed.json["action"] == "resolve"
    event = app.extensions["autotask_ilert"].store.queued("default", 77)[0]
    assert event["callout"]["number"] == "T1" and event["callout"]["status"] == "New"
    assert event["callout"]["extra"] == {"via": "autotask-webhook"}


def test_two_spellings_of_one_field_must_agree(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    answer = signed_post(app, delivery(78, None, Fields={"status": 1, "Status": 5}))
    assert answer.status_code == 400 and answer.json["code"] == "invalid_payload"
    assert "Fields" in answer.json["errors"]
    assert keys(app) == []


def test_an_unknown_status_id_is_ignored_with_a_2xx(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    answer = signed_post(app, delivery(79, 999))
    assert answer.status_code == 200
    assert answer.json == {"ticket": 79, "action": "ignored", "reason": "unknown_status"}
    assert record(app, 79) is None


@pytest.mark.parametrize(("change", "reason"), [
    ({"Fields": {"priority": 4}}, "no_status"),
    ({"Action": "Delete"}, "deleted"),
    ({"EntityType": "Company"}, "not_a_ticket"),
])
def test_what_is_not_acted_on_still_gets_a_2xx(
    make_app: AppFactory, tenant: Tenant, change: dict[str, Any], reason: str
) -> None:
    app = bridge(make_app, tenant)
    answer = signed_post(app, {**delivery(80, 1), **change})
    assert answer.status_code == 200 and answer.json["reason"] == reason
    assert record(app, 80) is None


def test_the_lifecycle_decides_a_rejection_too_but_answers_2xx(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    answer = signed_post(app, delivery(81, 5))  # Complete for a ticket without an alert
    assert answer.status_code == 200 and answer.json["action"] == "reject"
    assert queued(app, 81) == []


def test_the_host_app_hears_of_webhook_changes_as_of_callouts(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    heard: list[tuple[str, dict[str, Any]]] = []

    def listen(name: str) -> Any:
        return lambda sender, **data: heard.append((name, data))

    scheduled, rejected = listen("alert_scheduled"), listen("callout_rejected")
    signals.alert_scheduled.connect(scheduled, sender=app)
    signals.callout_rejected.connect(rejected, sender=app)
    try:
        assert signed_post(app, delivery(82, 1)).status_code == 202  # New
        assert signed_post(app, delivery(83, 5, sequence=2)).status_code == 200  # Complete, no alert
    finally:
        signals.alert_scheduled.disconnect(scheduled, sender=app)
        signals.callout_rejected.disconnect(rejected, sender=app)
    assert heard == [
        ("alert_scheduled", {"source": "default", "ticket": 82, "action": "create", "state": "PENDING",
                             "status": "New"}),
        ("callout_rejected", {"source": "default", "ticket": 83, "status": "Complete"}),
    ]


def test_event_time_makes_an_older_delivery_stale(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    assert signed_post(app, delivery(82, 1, 1, EventTime="2026-11-30T10:00:05Z")).status_code == 202
    late = signed_post(app, delivery(82, 5, 2, EventTime="2026-11-30T10:00:01Z"))
    assert late.status_code == 200 and late.json["action"] == "stale"
    assert queued(app, 82) == ["create"]


def test_a_deactivated_message_is_logged_and_never_acted_on(
    served: tuple[Flask, str], tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    app, url = served
    webhook_id = install(tenant, url)
    # The bridge refuses every delivery (unsigned): after one failed event the simulated
    # Autotask deactivates the webhook and says so, unsigned, to the deactivation URL.
    tenant.state.webhooks.configure({"signing": "none", "disable_after": 1})
    with caplog.at_level(logging.INFO, logger="flask_autotask_ilert"):
        ticket = tenant.state.add_ticket("Router down", status_label="New")
        last(tenant)
        (hook,) = [w for w in tenant.state.webhooks.webhooks() if w["id"] == webhook_id]
        assert hook["isActive"] is False
        answer = app.test_client().post(HOOK, json={"Action": "Deactivated", "Guid": "x", "Id": 1})
    assert answer.status_code == 200 and answer.json == {"action": "deactivated"}
    warnings = [r for r in caplog.records if "deactivated a webhook" in r.getMessage()]
    assert len(warnings) == 2  # the simulator's message and the one above
    assert record(app, ticket["id"]) is None and keys(app) == []
    assert SECRET not in caplog.text and TOKEN not in caplog.text


# -- callouts and webhooks together ------------------------------------------------------------------


def test_a_ticket_reported_by_callouts_and_webhooks_pages_once(
    make_app: AppFactory, tenant: Tenant, ilert: tuple[IlertState, ServerThread]
) -> None:
    ilert_state, ilert_server = ilert
    app = bridge(make_app, tenant, ilert_api_url=ilert_server.url)
    server = ServerThread(app).start()
    try:
        install(tenant, f"{server.url}{HOOK}")
        tenant.state.callout_url = f"{server.url}{PREFIX}/callout/{TOKEN}"
        ticket = tenant.state.add_ticket("Mail queue stuck", status_label="New")
        tenant.state.set_status(ticket["id"], "In Progress")
        tenant.state.set_status(ticket["id"], "Complete")
        deliveries = last(tenant, 3)
        callouts = tenant.state.wait_for_callouts(3)
        assert all(d.attempts[-1] in (200, 202) for d in deliveries)
        assert all(c.status_code in (200, 202) for c in callouts)
        drain(app)
    finally:
        server.stop()
    key = f"autotask-{ticket['id']}"
    assert [e.body["eventType"] for e in ilert_state.events() if e.body["alertKey"] == key] == [
        "ALERT", "ACCEPT", "RESOLVE"]
    # Six reports of three changes: whichever came first scheduled the event, the other nothing.
    codes = [c.status_code for c in callouts] + [d.attempts[-1] for d in deliveries]
    assert sorted(codes) == [200, 200, 200, 202, 202, 202]


# -- configuration and refusals ----------------------------------------------------------------------


def test_a_source_without_the_secret_answers_404(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant, autotask_webhook_secret=None)
    answer = signed_post(app, delivery(5, 1))
    assert answer.status_code == 404
    unknown = app.test_client().post(f"{PREFIX}/autotask-webhook/not-a-token-at-all-123", json={})
    assert unknown.status_code == 404


def test_the_secret_needs_the_autotask_credentials_and_a_sane_length(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="AUTOTASK_WEBHOOK_SECRET needs the AUTOTASK_"):
        make_app(autotask_webhook_secret=SECRET)
    creds = {"autotask_username": "u", "autotask_secret": "s", "autotask_integration_code": "c"}
    for bad in ("short", "x" * 65):
        with pytest.raises(ConfigurationError, match="16 to 64 printable") as caught:
            make_app(**creds, autotask_webhook_secret=bad)
        assert bad not in str(caught.value)


@pytest.mark.parametrize(("body", "field"), [
    ({"Action": "Update", "Id": 5, "SequenceNumber": 1}, "Guid"),
    ({"Action": "Update", "Guid": "g", "Id": "5", "SequenceNumber": 1}, "Id"),
    ({"Action": "Update", "Guid": "g", "Id": 5, "SequenceNumber": True}, "SequenceNumber"),
    ({"Action": "Update", "Guid": "g", "Id": 5, "SequenceNumber": 1, "Fields": [1]}, "Fields"),
    ({"Action": "Update", "Guid": "g", "Id": 5, "SequenceNumber": 1, "Fields": {"status": "high"}}, "Fields"),
    ({"Action": "Renamed", "Guid": "g", "Id": 5, "SequenceNumber": 1}, "Action"),
    ({"Action": "Update", "Guid": "g h", "Id": 5, "SequenceNumber": 1}, "Guid"),
    ({"Action": "Update", "Guid": "g", "Id": 5, "SequenceNumber": 1,
      "Fields": {f"f{n}": n for n in range(65)}}, "Fields"),
])
def test_an_invalid_signed_delivery_is_a_400_naming_the_field(
    make_app: AppFactory, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    app = bridge(make_app, tenant)
    answer = signed_post(app, body)
    assert answer.status_code == 400 and answer.json["code"] == "invalid_payload", answer.json
    assert field in answer.json["errors"], answer.json
    assert keys(app) == []


def test_signed_bodies_that_are_not_json_objects(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    client = app.test_client()
    for raw, code in ((b"[1, 2]", 400), (b"{not json", 400), (b'{"a": NaN}', 400)):
        headers = {"X-Hook-Signature": hook_signature(SECRET, raw)}
        answer = client.post(HOOK, data=raw, headers=headers, content_type="application/json")
        assert answer.status_code == code and answer.json["code"] == "invalid_payload"
    raw = json.dumps(delivery(5, 1)).encode()
    text = client.post(HOOK, data=raw, headers={"X-Hook-Signature": hook_signature(SECRET, raw)},
                       content_type="text/plain")
    assert text.status_code == 415
    assert keys(app) == []


def test_the_body_limit_holds(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant, max_body_bytes=2048)
    body = json.dumps({**delivery(5, 1), "pad": "x" * 4096}).encode()
    answer = app.test_client().post(HOOK, data=body, content_type="application/json",
                                    headers={"X-Hook-Signature": hook_signature(SECRET, body)})
    assert answer.status_code == 413 and keys(app) == []


def test_the_schema_keeps_what_it_reads() -> None:
    hook = load_autotask_webhook(delivery(7865, "8"))
    assert hook.status_value == 8 and hook.ticket_number == "T20261130.0001"
    assert hook.person_id == 30691780 and hook.sequence == 1 and hook.event_time is not None


# -- hostile input ---------------------------------------------------------------------------------

_KEYS = st.sampled_from(["Action", "Guid", "Id", "SequenceNumber", "Fields", "EventTime", "PersonID",
                         "EntityType", "action", "FIELDS"])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**60) | st.text(max_size=12)
    | st.sampled_from(["Update", "Create", "Delete", "Deactivated", "g-1"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["status", "Status", "ticketNumber", "x"]), children, max_size=3),
    max_leaves=8,
)


def test_any_signed_body_gets_a_documented_answer_never_a_5xx(make_app: AppFactory, tenant: Tenant) -> None:
    app = bridge(make_app, tenant)
    seen: set[int] = set()

    # Random bodies, and valid deliveries with a few keys changed at random.
    near_valid = st.builds(
        lambda ticket, status, sequence, changes: {**delivery(ticket, status, sequence), **changes},
        st.integers(1, 50), st.integers(0, 20) | st.none(), st.integers(0, 10**6),
        st.dictionaries(_KEYS, _VALUES, max_size=2),
    )

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(_KEYS, _VALUES, max_size=9) | near_valid)
    @example(delivery(5, 999))  # ignored: 200
    @example({"Action": 1})  # invalid: 400
    def check(body: dict[str, Any]) -> None:
        answer = signed_post(app, body)
        assert answer.status_code in (200, 202, 400), (body, answer.json)
        seen.add(answer.status_code)
        if answer.status_code == 400:
            assert answer.json["code"] == "invalid_payload" and answer.json["errors"]

    check()
    assert {200, 202, 400} <= seen


#: How many times an ordinary callout's CPU time a hostile delivery may take (as tests/test_linear_input.py).
BOUND = 20


def _cpu(call: Any) -> float:
    started = time.thread_time()
    call()
    return time.thread_time() - started


def test_bodies_at_the_limit_cost_about_an_ordinary_callout(
    make_app: AppFactory, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Worst cases for the signature's escaping at MAX_BODY_BYTES, signed wrongly and rightly.

    CPU time of this thread (the test client runs the app in it), relative to an
    ordinary callout measured in the same run, as for the callout's own checks.
    """
    app = bridge(make_app, tenant)
    limit = app.extensions["autotask_ilert"].settings.max_body_bytes
    client = app.test_client()
    head = '{"Action":"Update","Guid":"g","Id":5,"SequenceNumber":1,"x":'

    def fill(start: str, unit: str, tail: str) -> bytes:
        room = limit - len(start.encode()) - len(tail.encode())
        body = start + unit * (room // len(unit.encode())) + tail
        return (body + " " * (limit - len(body.encode()))).encode()

    shapes = {
        "escapes in one string": (fill(head + '"', '\\"', '"}'), 200),
        "many short strings": (fill(head + "[", '"<",', '"<"]}'), 200),
        "non-ASCII": (fill(head + '"', "😀", '"}'), 200),
        "HTML characters": (fill(head + '"', "<&'", '"}'), 200),
        "brackets": (fill("", "[]", ""), 400),
        "quotes, not JSON": (b'"' * limit, 400),
    }
    ordinary: list[float] = []
    for ticket in range(9000, 9007):
        form = f"id={ticket}&status=New"
        ordinary.append(_cpu(lambda form=form: client.post(
            f"{PREFIX}/callout/{TOKEN}", data=form, content_type="application/x-www-form-urlencoded")))
    usual = statistics.median(ordinary[1:])
    figures = []
    for name, (body, code) in shapes.items():
        assert len(body) == limit
        for secret, expected in (("wrong-secret-00000000", 401), (SECRET, code)):
            answers: list[int] = []
            headers = {"X-Hook-Signature": hook_signature(secret, body)}
            spent = _cpu(lambda headers=headers, body=body, answers=answers: answers.append(client.post(
                HOOK, data=body, headers=headers, content_type="application/json").status_code))
            assert answers == [expected], (name, answers)
            assert spent < BOUND * usual, f"{name}: {spent * 1000:.1f} ms vs {usual * 1000:.2f} ms"
            figures.append(f"{name} ({expected}): {spent / usual:.1f}x")
    assert record(app, 5) is None  # each was ignored (no status) or refused
    with capsys.disabled():
        print(f"\nAutotask webhook at {limit} B, CPU time per ordinary callout's:", "; ".join(figures))


# -- failures that Autotask's retry must be able to repair -------------------------------------------


def test_autotask_unreachable_for_the_picklist_is_a_503_and_the_retry_counts(
    make_app: AppFactory, tenant: Tenant
) -> None:
    app = bridge(make_app, tenant)
    tenant.server.stop()
    try:
        down = signed_post(app, delivery(90, 1))
    finally:
        tenant.server.start()
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json["code"] == "autotask_unavailable" and keys(app) == []
    again = signed_post(app, delivery(90, 1))  # Autotask delivers the same event again
    assert again.status_code == 202 and again.json["action"] == "create"


def test_a_delivery_redis_failed_to_record_is_taken_when_it_comes_again(
    make_app: AppFactory, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = bridge(make_app, tenant)
    store = app.extensions["autotask_ilert"].store
    real = store.apply_callout

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store, "apply_callout", real)
        raise StoreUnavailable("ConnectionError: gone for a moment")

    monkeypatch.setattr(store, "apply_callout", fails_once)
    failed = signed_post(app, delivery(91, 1))
    assert failed.status_code == 503 and failed.headers["Retry-After"]
    assert record(app, 91) is None
    again = signed_post(app, delivery(91, 1))
    assert again.status_code == 202 and again.json["action"] == "create"


def test_one_log_line_and_one_count_per_delivery(
    make_app: AppFactory, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    app = bridge(make_app, tenant, log_format="json")
    labels = {"source": "default", "action": "create", "code": "202"}
    before = REGISTRY.get_sample_value("autotask_ilert_autotask_webhooks_total", labels) or 0.0
    with caplog.at_level(logging.INFO, logger="flask_autotask_ilert"):
        assert signed_post(app, delivery(95, 1)).status_code == 202
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    (line,) = [item for item in lines if item["event"] == "autotask_webhook"]
    assert line["ticket"] == 95 and line["hook_action"] == "Update" and line["person"] == 30691780
    assert line["status"] == "New" and line["action"] == "create" and line["outcome"] == 202
    assert REGISTRY.get_sample_value("autotask_ilert_autotask_webhooks_total", labels) == before + 1


# -- the simulator's deliveries -----------------------------------------------------------------------


def test_the_simulator_retries_a_failed_delivery_and_keeps_trigger_order(tenant: Tenant) -> None:
    received: list[tuple[int, str | None]] = []
    receiver = Flask("receiver")

    @receiver.post("/hook")
    def hook() -> tuple[str, int]:
        sequence = int(request.get_json()["SequenceNumber"])
        received.append((sequence, request.headers.get("X-Hook-Signature")))
        return "", 503 if len(received) == 1 else 200  # the first attempt fails

    server = ServerThread(receiver).start()
    try:
        install(tenant, f"{server.url}/hook")
        tenant.state.webhooks.configure({"max_attempts": 3})
        ticket = tenant.state.add_ticket("Backup failed", status_label="New")
        tenant.state.set_status(ticket["id"], "In Progress")
        first, second = last(tenant, 2)
    finally:
        server.stop()
    assert first.attempts == [503, 200] and second.attempts == [200]
    # The retry is the same delivery (same signature), and the later event waited for it.
    assert [s for s, _ in received] == [1, 1, 2]
    assert received[0][1] == received[1][1] == first.signature
    payload = json.loads(second.body)
    assert payload["Action"] == "Update" and payload["Fields"]["status"] == 8
    assert payload["PersonID"] == tenant.state.webhooks.acting_resource_id
    assert payload["EventTime"] == tenant.state.ticket(ticket["id"])["lastActivityDate"]
