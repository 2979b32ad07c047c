"""The audit trail in words: `status` says which status label came, who acted in ilert and why a
delivery failed, and a full trail still fits the 2 KB budget of a tracked ticket."""

from __future__ import annotations

import redis
import responses
from flask import Flask

from flask_autotask_ilert import audit
from flask_autotask_ilert.audit import Entry
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import State, StatusClass, column

from .conftest import AppFactory, Clock, drain
from .test_sync import SYNC, webhook
from .test_sync import callout as sync_callout
from .test_sync import rsps as sync_rsps  # noqa: F401 - the fixture, with Autotask's answers
from .test_worker import ILERT, callout

NOW = 1_764_240_000


def status_text(app: Flask, ticket: int) -> str:
    result = app.test_cli_runner().invoke(args=["autotask-ilert", "status", str(ticket)])
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_status_shows_the_status_label_and_why_a_delivery_failed(
    make_app: AppFactory, rsps: responses.RequestsMock, clock: Clock
) -> None:
    app = make_app()
    rsps.post(ILERT, status=503, json={"message": "maintenance window", "code": "UNAVAILABLE"})
    callout(app, 9, "New")
    drain(app)
    text = status_text(app, 9)
    assert 'status "New"' in text
    assert "ilert create failed (try 1): http 503, retried; " in text
    assert "503" in text.split("retried; ", 1)[1]  # the reason, not only the code


def test_status_shows_who_accepted_in_ilert_and_the_status_set(
    make_app: AppFactory, sync_rsps: responses.RequestsMock  # noqa: F811
) -> None:
    app = make_app(**SYNC)
    sync_rsps.patch("https://webservices5.autotask.net/atservicesrest/v1.0/Tickets", json={"itemId": 7})
    sync_rsps.post("https://webservices5.autotask.net/atservicesrest/v1.0/Tickets/7/Notes",
                   json={"itemId": 1})
    sync_callout(app, "New")
    drain(app)
    assert webhook(app, "ACCEPTED").status_code in (200, 202)
    drain(app)
    text = status_text(app, 7)
    assert "webhook: accept-ticket PENDING>ACCEPTED; by Jane Doe (jdoe)" in text
    assert 'ticket accept-ticket delivered (try 1); by Jane Doe (jdoe); status "In Progress"' in text


def test_words_follow_their_records_and_are_bounded() -> None:
    entry = Entry.delivery(audit.FAILED, {"action": "create"}, 2, 503, "line one\nline two " + "x" * 500)
    assert "\n" not in entry.line() and len(entry.line().encode()) <= audit.WORDS_BYTES
    trail = entry.pack(NOW + 1) + Entry.transition(audit.WEBHOOK, "accept-ticket", State.PENDING,
                                                    State.ACCEPTED).pack(NOW)
    assert audit.decode(trail, f"{entry.line()}\n") == [
        (NOW + 1, f"ilert create failed (try 2): http 503, retried; {entry.line()}"),
        (NOW, "webhook: accept-ticket PENDING>ACCEPTED"),
    ]
    assert audit.decode(trail)[0][1] == "ilert create failed (try 2): http 503, retried"  # an older trail


def test_a_full_trail_in_words_stays_within_two_kilobytes(make_app: AppFactory, redis_server: str) -> None:
    app = make_app(real_redis=True)
    bridge = get_bridge(app)
    store = bridge.store
    long_words = "é" * 400  # multi-byte characters, far past the cut
    for n in range(12):  # more than AUDIT_ENTRIES: the oldest records and their words are dropped
        status_class = StatusClass.NEW if n % 2 == 0 else StatusClass.IN_PROGRESS
        store.apply_callout("default", 5, status_class, column(status_class), {}, None, 86_400_000,
                            label=f"{long_words}{n}")
    trail = store.audit("default", 5)
    assert len(trail) == bridge.settings.audit_entries
    assert all('status "' in what for _at, what in trail)
    client = redis.Redis.from_url(redis_server)
    key = store.keys.mapping("default", 5)
    assert len(client.hget(key, "w").split(b"\n")) == bridge.settings.audit_entries
    assert int(client.memory_usage(key, samples=0)) <= 2048
