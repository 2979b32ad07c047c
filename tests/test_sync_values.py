"""ilert -> Autotask, value by value: the ticket write a webhook queues, its notes' text, the
answers, the counters, the audit words and the log lines, each written out as a caller, an
operator or the person reading the ticket sees it.

In process, on the in-process store; nothing is delivered (the queue is read as it is).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from flask_autotask_ilert import sync
from flask_autotask_ilert.extension import get_bridge

from .conftest import AppFactory
from .test_sync import SYNC, WEBHOOK, callout, webhook

REPORTED = "2026-11-30T09:15:02Z"


def ticket_writes(app: Flask, ticket: int = 7) -> list[dict[str, Any]]:
    """The ticket writes queued for the ticket, without their random ids."""
    queued = get_bridge(app).store.queued("default", ticket)
    return [{k: v for k, v in e.items() if k != "id"} for e in queued if e["target"] == "ticket"]


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    """Ticket 7 paged (its alert is PENDING, the ticket New); nothing delivered."""
    application = make_app(**SYNC)
    assert callout(application, "New").status_code == 202
    return application


def test_an_accept_queues_the_status_change_and_the_note_with_every_field(app: Flask) -> None:
    response = webhook(app, "ACCEPTED", reportTime=REPORTED, headers={"X-Request-Id": "req-ilert-42"})
    assert (response.status_code, response.json) == (
        202, {"ticket": 7, "action": "accept-ticket", "state": "ACCEPTED"})
    assert ticket_writes(app) == [
        {
            "target": "ticket",
            "action": "accept-ticket",
            "source": "default",
            "ticket": 7,
            "status_label": "In Progress",
            "note_title": "ilert",
            "note_text": "Alert 2983781 accepted in ilert by Jane Doe (jdoe) at 2026-11-30 09:15:02 UTC.",
            "by": "Jane Doe (jdoe)",
            "alert_id": "2983781",
            "queued_at": 1_700_000_000_000,
            "attempts": 0,
            "request_id": "req-ilert-42",
            "alert_key": "autotask-7",
        }
    ]


def test_a_resolve_queues_complete_and_the_resolve_note(app: Flask) -> None:
    response = webhook(app, "RESOLVED", reportTime="2026-11-30T10:15:02+01:00")
    assert (response.status_code, response.json) == (
        202, {"ticket": 7, "action": "resolve-ticket", "state": "RESOLVED"})
    [write] = ticket_writes(app)
    assert (write["action"], write["status_label"], write["note_title"], write["note_text"]) == (
        "resolve-ticket",
        "Complete",
        "ilert",
        "Alert 2983781 resolved in ilert by Jane Doe (jdoe) at 2026-11-30 09:15:02 UTC.",
    )


def test_the_note_templates_get_every_field_and_the_defaults_of_missing_ones(
    make_app: AppFactory,
) -> None:
    app = make_app(
        **SYNC,
        note_title="ilert {alert_id} [{alert_url}]",
        accept_note="{who} took {alert_id} ({alert_url}) at {when}",
    )
    callout(app, "New")
    body = {"status": "ACCEPTED", "alertKey": "autotask-7", "reportTime": REPORTED}
    assert app.test_client().post(WEBHOOK, json=body).status_code == 202  # no id, no url, no person
    [write] = ticket_writes(app)
    assert write["note_title"] == "ilert ? []"
    assert write["note_text"] == "someone in ilert took ? () at 2026-11-30 09:15:02 UTC"
    assert write["alert_id"] is None and write["by"] == "someone in ilert"


def test_the_alert_url_is_written_into_the_note(make_app: AppFactory) -> None:
    app = make_app(**SYNC, note_title="ilert {alert_id}", accept_note="See {alert_url}")
    callout(app, "New")
    webhook(app, "ACCEPTED", alertUrl="https://x.ilert.com/alerts/55")
    [write] = ticket_writes(app)
    assert (write["note_title"], write["note_text"]) == ("ilert 2983781", "See https://x.ilert.com/alerts/55")


class _BerlinHostClock(datetime):
    """The host's clock at 2026-11-30 12:34:56 UTC, its local time Berlin's (13:34:56)."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        instant = datetime(2026, 11, 30, 12, 34, 56, tzinfo=timezone.utc)
        if tz is None:
            return instant.astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None)
        return instant.astimezone(tz)


def test_without_a_report_time_the_note_says_now_in_utc(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "datetime", _BerlinHostClock)
    assert webhook(app, "ACCEPTED").status_code == 202
    [write] = ticket_writes(app)
    assert write["note_text"] == (
        "Alert 2983781 accepted in ilert by Jane Doe (jdoe) at 2026-11-30 12:34:56 UTC.")


def test_an_accept_on_a_ticket_that_is_no_longer_new_notes_it_without_a_status(
    make_app: AppFactory,
) -> None:
    app = make_app(**SYNC)
    callout(app, "New")
    callout(app, "Customer+Note+Added")  # class OTHER: the alert stays PENDING
    assert webhook(app, "ACCEPTED", reportTime=REPORTED).status_code == 202
    [write] = ticket_writes(app)
    assert (write["action"], write["status_label"]) == ("accept-ticket", None)
    assert write["note_text"] == (
        "Alert 2983781 accepted in ilert by Jane Doe (jdoe) at 2026-11-30 09:15:02 UTC.")


def test_an_accept_keeps_the_record_and_a_resolve_keeps_it_for_the_retention(
    make_app: AppFactory,
) -> None:
    app = make_app(**SYNC, resolved_retention_days=2)
    store = get_bridge(app).store
    callout(app, "New")
    webhook(app, "ACCEPTED")
    accepted = store.mapping("default", 7)
    assert accepted is not None and accepted.ttl_ms is None  # an open ticket's record never expires
    webhook(app, "RESOLVED")
    resolved = store.mapping("default", 7)
    assert resolved is not None and resolved.ttl_ms is not None
    assert 172_000_000 < resolved.ttl_ms <= 172_800_000  # two days


def test_each_write_is_in_the_audit_trail_with_who_acted(app: Flask) -> None:
    webhook(app, "ACCEPTED")
    webhook(app, "RESOLVED")
    words = [text for _, text in get_bridge(app).store.audit("default", 7)]
    assert words[:2] == [
        "webhook: resolve-ticket ACCEPTED>RESOLVED; by Jane Doe (jdoe)",
        "webhook: accept-ticket PENDING>ACCEPTED; by Jane Doe (jdoe)",
    ]


# -- what the caller is answered ------------------------------------------------------------------


def test_a_webhook_that_changes_nothing_names_the_ticket_and_its_state(app: Flask) -> None:
    webhook(app, "ACCEPTED")
    again = webhook(app, "ACCEPTED")
    assert (again.status_code, again.json) == (200, {"ticket": 7, "action": "nothing", "state": "ACCEPTED"})
    pending = webhook(app, "PENDING")
    assert (pending.status_code, pending.json) == (
        200, {"ticket": 7, "action": "nothing", "state": "ACCEPTED"})


def test_a_key_of_ours_for_a_ticket_we_do_not_know_names_the_ticket(app: Flask) -> None:
    response = webhook(app, "ACCEPTED", key="autotask-999")
    assert (response.status_code, response.json) == (200, {"ticket": 999, "action": "ignored", "state": None})
    assert get_bridge(app).store.counters()["webhooks_not_ours"] == 1


def test_a_key_that_is_not_ours_names_no_ticket(app: Flask) -> None:
    response = webhook(app, "ACCEPTED", key="someone-else-7")
    assert (response.status_code, response.json) == (
        200, {"ticket": None, "action": "ignored", "state": None})
    assert get_bridge(app).store.counters()["webhooks_not_ours"] == 1


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("autotask-1234567890123456", (1234567890123456, 1)),  # 16 digits: the longest ticket id
        ("autotask-12345678901234567", None),  # 17
        ("autotask-7-123456789", (7, 123456789)),  # 9 digits: the longest generation
        ("autotask-7-1234567890", None),  # 10
        ("\tautotask-7-2\n", (7, 2)),
        ("autotask- 7", None),
        ("autotask-7 -2", None),
        ("xautotask-7", None),
        ("autotask-7x", None),
        ("autotask-7-1", (7, 1)),
        ("autotask-7-00", None),
        ("", None),
    ],
)
def test_alert_keys_at_their_limits(key: str, expected: tuple[int, int] | None) -> None:
    assert sync.alert_of(key) == expected
    assert sync.ticket_of(key) == (expected[0] if expected else None)


# -- an older alert's webhook, and a record that keeps changing -------------------------------------


@pytest.fixture
def reopened(make_app: AppFactory) -> Flask:
    """Ticket 7 paged, completed, then New again: its second alert (generation 2) is PENDING."""
    application = make_app(**SYNC, realert_on_reopen=True)
    for status in ("New", "Complete", "New"):
        assert callout(application, status).status_code == 202
    mapping = get_bridge(application).store.mapping("default", 7)
    assert mapping is not None and mapping.generation == 2
    return application


def test_an_older_alerts_webhook_is_logged_with_both_generations(
    reopened: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_autotask_ilert")
    webhook(reopened, "RESOLVED", key="autotask-7")
    assert (
        "webhook source=default ticket=7: RESOLVED is about alert 1 of the ticket, the current one is 2; "
        "ignored"
    ) in [r.getMessage() for r in caplog.records]


def test_an_older_alerts_webhook_reads_again_when_the_record_changed_meanwhile(
    reopened: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone moves the ticket to In Progress between the webhook's read and its write."""
    store = get_bridge(reopened).store
    real = store.compare_and_set
    calls = []

    def moved_meanwhile(*args: Any, **kwargs: Any) -> bool:
        calls.append(args[1])
        if len(calls) == 1:
            assert callout(reopened, "In+Progress").json["action"] == "accept"
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "compare_and_set", moved_meanwhile)
    response = webhook(reopened, "RESOLVED", key="autotask-7")
    assert (response.status_code, response.json) == (
        200, {"ticket": 7, "action": "ignored", "state": "ACCEPTED"})
    assert calls == [7, 7]
    assert store.counters()["webhooks_superseded"] == 1
    assert store.audit("default", 7)[0][1] == "webhook about an older alert: ignored, ACCEPTED kept"


def test_a_record_that_keeps_changing_is_given_up_after_eight_tries_with_a_503(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = get_bridge(app).store
    tries = []

    def always_changed(*args: Any, **kwargs: Any) -> bool:
        tries.append(args[1])
        return False

    monkeypatch.setattr(store, "compare_and_set", always_changed)
    caplog.set_level(logging.INFO, logger="flask_autotask_ilert")
    response = webhook(app, "ACCEPTED")
    assert response.status_code == 503 and response.json["code"] == "store_unavailable"
    assert tries == [7] * 8
    [line] = [r for r in caplog.records if getattr(r, "autotask_ilert", {}).get("outcome") == 503]
    assert line.autotask_ilert["reason"] == "the ticket's mapping kept changing; try again"
    assert ticket_writes(app) == []
