"""The lifecycle's holes, closed: what arrives out of order, from a wrong clock, or labelled oddly.

In-process (the Flask test client, the store on fakeredis and on a real
redis-server); tests/test_lifecycle_holes_e2e.py plays the ordering cases over
real processes. Reopened tickets and their alerts' webhooks are in test_sync.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import fakeredis
import pytest
import responses
from flask import Flask
from prometheus_client import REGISTRY

from flask_autotask_ilert.alerts import KEPT_SUMMARY_BYTES, build_event, kept_summary
from flask_autotask_ilert.checks import FAIL, check_autotask
from flask_autotask_ilert.errors import ConfigurationError
from flask_autotask_ilert.events import ilert_event
from flask_autotask_ilert.extension import get_bridge
from flask_autotask_ilert.lifecycle import Action, PriorityMap

from .conftest import TOKEN, AppFactory, Clock, drain

ILERT = "http://ilert.invalid/api/events"
CALLOUT = f"/autotask-ilert/callout/{TOKEN}"
SYNC = {
    "bidirectional": True,
    "webhook_token": "webhook-token-0123456789abcdef",
    "ticket_updater": "flask_autotask_ilert.tickets:TicketUpdate",  # any callable will do here
}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(ILERT, status=202, json={})
        yield mock


@pytest.fixture(params=["fakeredis", "redis"])
def app(request: pytest.FixtureRequest, make_app: AppFactory) -> Flask:
    return make_app(real_redis=request.param == "redis")


def at(clock: Clock, seconds: float = 0.0) -> str:
    """An Autotask callout time, ``seconds`` after the bridge's (injected) clock."""
    moment = datetime.fromtimestamp(clock.now + seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00:00")


def post(app: Flask, ticket: int, status: str, when: str | None = None, **extra: str) -> Any:
    body = {"id": str(ticket), "status": status, **extra}
    if when is not None:
        body["last_activity_datetime"] = when
    return app.test_client().post(CALLOUT, data=body)


def ilert_bodies(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(c.request.body) for c in rsps.calls if c.request.url == ILERT]


# -- 2. the labels the bridge writes mean what they say ------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"resolve_status": "Resolved"}, "RESOLVE_STATUS 'Resolved' is a OTHER status"),
        ({"resolve_status": "Waiting Customer"}, "RESOLVE_STATUS 'Waiting Customer' is a WAITING"),
        ({"accept_status": "Complete"}, "ACCEPT_STATUS 'Complete' is a CLOSED status"),
        ({"accept_status": "New"}, "ACCEPT_STATUS 'New' is a NEW status"),
        ({"accept_status": "Triage"}, "ACCEPT_STATUS 'Triage' is a OTHER status"),
    ],
)
def test_init_app_refuses_written_labels_of_the_wrong_class(
    make_app: AppFactory, options: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        make_app(**SYNC, **options)


def test_the_refusal_says_in_full_what_each_written_label_must_be(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_app(**SYNC, accept_status="Complete", resolve_status="Waiting Customer")
    assert str(refused.value) == (
        "source 'default': ACCEPT_STATUS 'Complete' is a CLOSED status; it must be one that accepts "
        "(IN_PROGRESS or WAITING, see STATUS_LABELS); RESOLVE_STATUS 'Waiting Customer' is a WAITING "
        "status; it must be a CLOSED one (see STATUS_LABELS)"
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"accept_status": "Waiting Customer"},  # WAITING accepts too
        {"resolve_status": "Denied"},
        {"resolve_status": "Resolved", "status_labels": {"CLOSED": ["Complete", "Resolved"]}},
        {"accept_status": "Triage", "status_labels": {"IN_PROGRESS": ["In Progress", "Triage"]}},
    ],
)
def test_written_labels_of_the_right_class_are_accepted(
    make_app: AppFactory, options: dict[str, Any]
) -> None:
    make_app(**SYNC, **options)


def test_the_rule_is_only_for_bidirectional_sources(make_app: AppFactory) -> None:
    make_app(resolve_status="Resolved")  # not written by anything: no sync


def test_check_fails_a_source_whose_written_labels_do_not_mean_what_they_say(
    make_app: AppFactory,
) -> None:
    """init_app refuses these; check says so too for a source it is handed as it is."""
    bridge = get_bridge(make_app(**SYNC))
    good = bridge.settings.sources["default"]
    assert good.sync is not None
    bad = replace(good, sync=replace(good.sync, resolve_status="Resolved"))
    [result] = list(check_autotask(bridge, bad))
    assert result.status == FAIL and result.what == "sync statuses"
    assert "RESOLVE_STATUS 'Resolved' is a OTHER status" in result.detail
    assert all(r.status != FAIL for r in check_autotask(bridge, good))


# -- 3. a refused first callout remembers its time ------------------------------------------------


def test_a_complete_before_its_older_new_makes_no_alert(
    app: Flask, clock: Clock, rsps: responses.RequestsMock
) -> None:
    """An RMM opened and closed the ticket within a second; Autotask delivered them swapped."""
    store = get_bridge(app).store
    closed = post(app, 31, "Complete", at(clock, -58))
    assert (closed.status_code, closed.json["action"]) == (400, "reject")
    opened = post(app, 31, "New", at(clock, -59))
    assert (opened.status_code, opened.json) == (200, {"ticket": 31, "action": "stale", "state": "NONE"})
    drain(app)
    assert ilert_bodies(rsps) == [] and store.queued("default", 31) == []
    assert store.mapping("default", 31) is None  # still not tracked
    assert [text for _, text in store.audit("default", 31)] == [
        'callout NEW: stale NONE>NONE; status "New"', 'callout CLOSED: reject NONE>NONE; status "Complete"']


def test_a_newer_callout_after_a_refused_one_still_pages(
    app: Flask, clock: Clock, rsps: responses.RequestsMock
) -> None:
    store = get_bridge(app).store
    assert post(app, 32, "Waiting Customer", at(clock, -60)).status_code == 400
    assert post(app, 32, "New", at(clock, -30)).status_code == 202
    assert post(app, 32, "In Progress").status_code == 202  # no time: ordered by nothing
    drain(app)
    assert [b["eventType"] for b in ilert_bodies(rsps)] == ["ALERT", "ACCEPT"]
    key = store.keys.mapping("default", 32)
    assert store.client.hget(key, "t") is None  # tracked now: the refused time is gone
    assert store.client.pttl(key) == -1


def test_a_refused_callouts_time_is_kept_for_the_reject_retention(
    make_app: AppFactory, clock: Clock
) -> None:
    """Even with the audit trail off, and never for longer than AUDIT_REJECT_HOURS."""
    app = make_app(audit_entries=0, audit_reject_hours=2)
    store = get_bridge(app).store
    post(app, 33, "Complete", at(clock, -10))
    key = store.keys.mapping("default", 33)
    assert 0 < store.client.pttl(key) <= 2 * 3_600_000
    assert post(app, 33, "New", at(clock, -20)).json["action"] == "stale"
    assert post(app, 33, "Complete").status_code == 400  # no time: still refused, not stale
    assert 0 < store.client.pttl(key) <= 2 * 3_600_000
    store.client.delete(key)  # as when it expires
    assert post(app, 33, "New", at(clock, -20)).status_code == 202


def test_a_refused_callout_without_a_time_leaves_nothing_behind(make_app: AppFactory) -> None:
    app = make_app(audit_entries=0)
    store = get_bridge(app).store
    assert post(app, 34, "Complete").status_code == 400
    assert store.client.exists(store.keys.mapping("default", 34)) == 0


# -- 4. timestamps from the future ---------------------------------------------------------------


def future_count() -> float:
    return REGISTRY.get_sample_value("autotask_ilert_future_timestamps_total", {"source": "default"}) or 0.0


def test_a_time_from_the_year_2999_does_not_freeze_the_ticket(
    app: Flask, clock: Clock, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    store = get_bridge(app).store
    before = future_count()
    caplog.set_level(logging.WARNING, "flask_autotask_ilert")
    first = post(app, 41, "New", "2999-01-01T00:00:00.0000000+00:00:00")
    assert first.status_code == 202
    mapping = store.mapping("default", 41)
    assert mapping is not None and mapping.last_activity_us is None  # not used for ordering
    assert future_count() == before + 1
    [line] = [r.getMessage() for r in caplog.records if "CLOCK_SKEW_SECONDS" in r.getMessage()]
    assert "ticket 41" in line.replace("ticket=", "ticket ") and "2999-01-01" in line
    assert TOKEN not in line
    assert post(app, 41, "In Progress", at(clock)).json["action"] == "accept"  # not stale
    assert post(app, 41, "Complete", at(clock, 1)).json["action"] == "resolve"
    drain(app)
    assert [b["eventType"] for b in ilert_bodies(rsps)] == ["ALERT", "ACCEPT", "RESOLVE"]


def skew_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "CLOCK_SKEW_SECONDS" in r.getMessage()]


def test_the_future_time_warning_says_when_how_far_and_the_limit(
    app: Flask, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten minutes ahead with the default five minutes allowed: one line, one count, no ordering."""
    store = get_bridge(app).store
    before = future_count()
    caplog.set_level(logging.WARNING, "flask_autotask_ilert")
    assert post(app, 45, "New", at(clock, 600)).status_code == 202
    assert skew_lines(caplog) == [
        "callout source=default ticket=45: last_activity_datetime 2023-11-14T22:23:20+00:00 is 600 s "
        "ahead of this host's clock (more than CLOCK_SKEW_SECONDS=300); not used to order callouts"
    ]
    assert future_count() == before + 1
    mapping = store.mapping("default", 45)
    assert mapping is not None and mapping.last_activity_us is None


def test_the_warning_gives_whole_seconds_at_the_largest_allowed_skew(
    make_app: AppFactory, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(clock_skew_seconds=86_400)
    before = future_count()
    caplog.set_level(logging.WARNING, "flask_autotask_ilert")
    assert post(app, 46, "New", at(clock, 2 * 86_400)).status_code == 202
    assert skew_lines(caplog) == [
        "callout source=default ticket=46: last_activity_datetime 2023-11-16T22:13:20+00:00 is 172800 s "
        "ahead of this host's clock (more than CLOCK_SKEW_SECONDS=86400); not used to order callouts"
    ]
    assert future_count() == before + 1


def test_a_time_exactly_the_allowed_skew_ahead_still_orders(
    app: Flask, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    before = future_count()
    caplog.set_level(logging.WARNING, "flask_autotask_ilert")
    assert post(app, 47, "New", at(clock, 300)).status_code == 202  # CLOCK_SKEW_SECONDS=300, to the µs
    assert post(app, 47, "In Progress", at(clock)).json["action"] == "stale"
    assert future_count() == before
    assert skew_lines(caplog) == []


def test_a_time_within_the_allowed_skew_still_orders(app: Flask, clock: Clock) -> None:
    before = future_count()
    assert post(app, 42, "New", at(clock, 240)).status_code == 202  # 4 minutes ahead: a slow clock
    assert post(app, 42, "In Progress", at(clock)).json["action"] == "stale"
    assert future_count() == before


def test_a_time_one_microsecond_past_the_allowed_skew_is_said_and_orders_nothing(
    app: Flask, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The limit holds to the microsecond, in the warning as in the store (callout.lua)."""
    before = future_count()
    caplog.set_level(logging.WARNING, "flask_autotask_ilert")
    assert post(app, 48, "New", "2023-11-14T22:18:20.0000010+00:00:00").status_code == 202  # 300 s + 1 µs
    assert skew_lines(caplog) == [
        "callout source=default ticket=48: last_activity_datetime 2023-11-14T22:18:20.000001+00:00 is 300 s "
        "ahead of this host's clock (more than CLOCK_SKEW_SECONDS=300); not used to order callouts"
    ]
    assert future_count() == before + 1
    assert post(app, 48, "In Progress", at(clock)).json["action"] == "accept"


def test_the_allowed_skew_is_configurable(make_app: AppFactory, clock: Clock) -> None:
    app = make_app(clock_skew_seconds=60)
    assert post(app, 43, "New", at(clock, 240)).status_code == 202
    assert post(app, 43, "In Progress", at(clock)).json["action"] == "accept"


@pytest.mark.parametrize("value", [0, -5, 100_000])
def test_the_allowed_skew_has_bounds(make_app: AppFactory, value: int) -> None:
    with pytest.raises(ConfigurationError, match="CLOCK_SKEW_SECONDS"):
        make_app(clock_skew_seconds=value)


def test_a_ticket_frozen_before_the_limit_existed_thaws(app: Flask, clock: Clock) -> None:
    """A record written with a far-future time (by an earlier version) orders nothing either."""
    store = get_bridge(app).store
    assert post(app, 44, "New").status_code == 202
    store.client.hset(store.keys.mapping("default", 44), "s", "PENDING|NEW|32472144000000000")
    assert post(app, 44, "Complete", at(clock)).json["action"] == "resolve"


# -- 7. every event carries a summary ------------------------------------------------------------


def test_accept_and_resolve_carry_the_alerts_summary(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    post(app, 51, "New", number="T20260101.0007")
    drain(app)
    post(app, 51, "In Progress")
    post(app, 51, "Complete")
    drain(app)
    alert, accept, resolve = ilert_bodies(rsps)
    assert alert["summary"] == "[T20260101.0007] Autotask ticket 51 (New)"
    assert accept["summary"] == resolve["summary"] == alert["summary"]


def test_the_kept_summary_is_short_and_the_record_stays_compact(
    make_app: AppFactory, rsps: responses.RequestsMock
) -> None:
    app = make_app(real_redis=True)
    store = get_bridge(app).store
    long_number = "T" + "é" * 60  # two bytes each in UTF-8
    post(app, 52, "New", number=long_number)
    drain(app)
    for status in ("In Progress", "Complete"):
        post(app, 52, status)
    drain(app)
    alert, accept, resolve = ilert_bodies(rsps)
    kept = store.summary("default", 52)
    assert kept is not None and len(kept.encode()) <= KEPT_SUMMARY_BYTES
    assert alert["summary"].startswith(kept[:-1]) and kept.endswith("\u2026")
    assert accept["summary"] == resolve["summary"] == kept
    assert store.client.object("encoding", store.keys.mapping("default", 52)) in (b"listpack", b"ziplist")


def test_without_a_kept_summary_the_ticket_number_stands_in(
    app: Flask, rsps: responses.RequestsMock
) -> None:
    """Events queued before summaries were kept, or a record forgotten meanwhile."""
    store = get_bridge(app).store
    post(app, 53, "New", number="T9")
    post(app, 53, "Complete", number="T9")
    [claim] = store.claim("w", 10_000, 8)
    store.delivered(claim)  # the ALERT went out before summaries were kept
    drain(app)
    resolve_53 = next(b for b in ilert_bodies(rsps) if b["alertKey"] == "autotask-53")
    assert resolve_53["summary"] == "[T9] Autotask ticket 53"


@pytest.mark.parametrize("action", [Action.ACCEPT, Action.RESOLVE])
def test_build_event_puts_a_summary_on_every_event(action: Action) -> None:
    event = ilert_event("default", 8, {"number": "T8"}, 0, action=action.value)
    assert build_event(event, PriorityMap(), summary="[T8] Disk full")["summary"] == "[T8] Disk full"
    assert build_event(event, PriorityMap())["summary"] == "[T8] Autotask ticket 8"
    event["callout"] = {}
    assert build_event(event, PriorityMap())["summary"] == "[#8] Autotask ticket 8"
    event["alert_key"] = "autotask-8-3"
    assert build_event(event, PriorityMap())["alertKey"] == "autotask-8-3"


@pytest.mark.parametrize("summary", ["", "short", "x" * 64, "x" * 65, "é" * 40, "a\u2603" * 30])
def test_kept_summaries_fit_in_64_bytes(summary: str) -> None:
    kept = kept_summary(summary)
    assert len(kept.encode("utf-8")) <= KEPT_SUMMARY_BYTES
    assert kept == summary if len(summary.encode()) <= KEPT_SUMMARY_BYTES else kept.endswith("\u2026")


def test_the_summary_is_never_kept_for_a_forgotten_ticket() -> None:
    from flask_autotask_ilert.store import Store

    store = Store(lambda: fakeredis.FakeRedis(), "t:", lambda: 1_700_000_000.0)
    assert store.keep_summary("default", 55, "[T55] gone") is False
    assert store.client.exists(store.keys.mapping("default", 55)) == 0
